//! `keeperkit stats`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use keeperkit_model::NodeKind;
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;
use serde::Serialize;

use crate::load::{load, point, print_findings};
use crate::{CmdResult, Outcome, StatsArgs};

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

/// Computes the statistics of a tree.
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
    let mut subs: Vec<Subtree> =
        subtrees.into_iter().map(|(path, (nodes, bytes))| Subtree { path, nodes, bytes }).collect();
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

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &StatsArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let state = load(fs, &args.source, point(args.at.at.as_deref(), args.at.at_index)?, false)?;
    print_findings(&state.report.findings, verbose);
    let s = compute(&state.tree, args.top);
    if args.json {
        super::json_doc(out, &s)?;
    } else {
        writeln!(out, "nodes:      {}", s.node_count)?;
        writeln!(out, "data bytes: {}", s.data_bytes)?;
        writeln!(out, "path bytes: {}", s.path_bytes)?;
        writeln!(out, "sessions:   {}", s.sessions)?;
        writeln!(out, "acl lists:  {}", s.acl_lists)?;
        writeln!(out, "digest:     {}", s.digest)?;
        writeln!(
            out,
            "kinds:      {}",
            s.kinds.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        )?;
        writeln!(out, "\ndepth  nodes")?;
        for (d, n) in &s.depth_histogram {
            writeln!(out, "{d:>5}  {n}")?;
        }
        writeln!(out, "\nbiggest subtrees by nodes:")?;
        for t in &s.biggest_subtrees_by_nodes {
            writeln!(out, "  {:>10} nodes {:>12} B  {}", t.nodes, t.bytes, super::escape(&t.path))?;
        }
        writeln!(out, "\nbiggest subtrees by bytes:")?;
        for t in &s.biggest_subtrees_by_bytes {
            writeln!(out, "  {:>12} B {:>10} nodes  {}", t.bytes, t.nodes, super::escape(&t.path))?;
        }
        writeln!(out, "\nlargest values:")?;
        for v in &s.largest_values {
            writeln!(out, "  {:>12} B  {}", v.bytes, super::escape(&v.path))?;
        }
        writeln!(out, "\nephemerals per session:")?;
        for e in &s.ephemerals_per_session {
            writeln!(
                out,
                "  {:<20} {:>8} (timeout {})",
                e.session,
                e.ephemerals,
                e.timeout_ms.map_or("session gone".to_string(), |t| format!("{t} ms"))
            )?;
        }
    }
    Ok(if state.report.has_errors() { Outcome::Found } else { Outcome::Clean })
}
