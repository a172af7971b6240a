//! Statistics of a tree, in one pass: node, data and path byte counts, depth and kind
//! histograms, the biggest subtrees (by nodes and by bytes), the largest values and
//! the ephemerals of each session (`keeperkit stats`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use keeperkit_model::NodeKind;
use keeperkit_tree::DataTree;
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
struct Open {
    path: String,
    nodes: u64,
    bytes: u64,
}

/// The subtree tops, fed as subtrees close.
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

/// Computes the statistics of a tree in one pre-order pass: subtree totals are summed
/// on a stack of the open ancestors (each closed subtree adds its totals to its parent),
/// and the top lists are bounded heaps, so memory is O(depth + top), not O(nodes).
pub fn compute(tree: &DataTree, top: usize) -> Stats {
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
    let mut depths: Vec<u64> = Vec::new();
    // Persistent, ephemeral, container, TTL.
    let mut kinds = [0u64; 4];
    let mut values = TopK::new(top);
    let mut tops = SubtreeTops { by_nodes: TopK::new(top), by_bytes: TopK::new(top) };
    // The open subtrees from depth 1 down to the last node visited; `stack[..open]`
    // are live, the rest are spare buffers reused for their path strings.
    let mut stack: Vec<Open> = Vec::new();
    let mut open = 0usize;
    let mut owners: HashMap<i64, u64> = HashMap::new();
    tree.for_each_preorder(|path, node| {
        let len = node.data().map_or(0, <[u8]>::len) as u64;
        s.node_count += 1;
        s.data_bytes += len;
        s.path_bytes += path.len() as u64;
        let depth = keeperkit_model::path::depth(path);
        if depths.len() <= depth {
            depths.resize(depth + 1, 0);
        }
        depths[depth] += 1;
        let kind = node.kind();
        kinds[match kind {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral => 1,
            NodeKind::Container => 2,
            NodeKind::Ttl => 3,
        }] += 1;
        if kind == NodeKind::Ephemeral {
            *owners.entry(node.stored_stat().ephemeral_owner).or_default() += 1;
        }
        if len > 0 {
            offer(&mut values, len, path, 1, len);
        }
        if depth == 0 {
            return;
        }
        // Pre-order: every open subtree at this depth or deeper is complete.
        while open >= depth {
            open -= 1;
            tops.close(&stack[open]);
            let (n, b) = (stack[open].nodes, stack[open].bytes);
            if open > 0 {
                stack[open - 1].nodes += n;
                stack[open - 1].bytes += b;
            }
        }
        if stack.len() == open {
            stack.push(Open { path: String::new(), nodes: 0, bytes: 0 });
        }
        let slot = &mut stack[open];
        slot.path.clear();
        slot.path.push_str(path);
        slot.nodes = 1;
        slot.bytes = len;
        open += 1;
    });
    while open > 0 {
        open -= 1;
        tops.close(&stack[open]);
        let (n, b) = (stack[open].nodes, stack[open].bytes);
        if open > 0 {
            stack[open - 1].nodes += n;
            stack[open - 1].bytes += b;
        }
    }
    s.depth_histogram =
        depths.into_iter().enumerate().filter(|&(_, n)| n > 0).collect::<BTreeMap<_, _>>();
    let names = ["persistent", "ephemeral", "container", "ttl"];
    s.kinds = names.into_iter().zip(kinds).filter(|&(_, n)| n > 0).collect();
    s.largest_values =
        values.into_sorted().into_iter().map(|r| Value { path: r.path, bytes: r.bytes }).collect();
    let subtree = |r: Ranked| Subtree { path: r.path, nodes: r.nodes, bytes: r.bytes };
    s.biggest_subtrees_by_nodes = tops.by_nodes.into_sorted().into_iter().map(subtree).collect();
    s.biggest_subtrees_by_bytes = tops.by_bytes.into_sorted().into_iter().map(subtree).collect();
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
            assert_eq!(compute(&t, top), naive(&t, top), "top {top}");
        }
        let s = compute(&t, 5);
        assert_eq!(s.node_count, t.node_count() as u64);
        assert_eq!(s.kinds.get("ephemeral"), Some(&9));
        assert_eq!(s.kinds.get("container"), Some(&5));
        assert_eq!(s.ephemerals_per_session.len(), 2);
        assert_eq!(s.biggest_subtrees_by_nodes[0].path, "/deep");
    }
}
