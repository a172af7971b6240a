//! Structural checks of a snapshot's content against what Keeper enforces or assumes
//! when it loads one (docs/formats/clickhouse.md, "Snapshot body", `KeeperStorageSnapshot::deserialize` in
//! `KeeperSnapshotManager.cpp`, stored copy 161234653, and the 2026 notes of the spec).

use std::collections::{HashMap, HashSet};

use keeperkit_model::keeper::{self, digest_version};

use super::SnapshotContents;

/// How bad a problem is for Keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Keeper loads the snapshot but the state is off (a later crash, a wrong answer,
    /// a release-build error log).
    Warning,
    /// Keeper refuses to load it (exception at startup, or `abort()` in V6-era code).
    Fatal,
}

/// One problem found by [`check_contents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProblem {
    /// Severity.
    pub severity: Severity,
    /// The node concerned, if any.
    pub path: Option<String>,
    /// What is wrong, as a sentence.
    pub message: String,
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

/// Checks a snapshot's content. Rules, with Keeper's behaviour:
///
/// - fatal: no `/` record (2026 readers reject it); a node whose parent is missing
///   (V6 readers throw while linking children); a record under `/keeper/` (Keeper
///   aborts unless `ignore_system_path_on_startup`); a `/keeper` record with data or a
///   non-zero mzxid (same); an ACL id that is neither 0, `u64::MAX` nor in the ACL map
///   (2026 `ACLMap` throws); a TTL node with children (V8 invariant);
/// - warning: numChildren different from the real number of children (`/` excepted,
///   as in Keeper; release builds log an error, debug builds throw); a repeated path
///   (the last record wins in V6); a node mzxid above the header zxid (Keeper's own
///   writers never produce it); a session id at or above `session_id_counter` (new
///   sessions would reuse it); an ephemeral owner that is not a live session (the node
///   would never expire); a stored digest of the current versions (4, 5) that differs
///   from the nodes' digest (Keeper trusts it and later terminates on the first log
///   entry whose digest disagrees).
pub fn check_contents(c: &SnapshotContents) -> Vec<ContentProblem> {
    let mut out = Vec::new();
    let mut push = |severity, path: Option<&str>, message: String| {
        out.push(ContentProblem { severity, path: path.map(str::to_owned), message });
    };
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(c.nodes.len());
    for (i, n) in c.nodes.iter().enumerate() {
        if index.insert(n.path.as_str(), i).is_some() {
            push(
                Severity::Warning,
                Some(&n.path),
                "path appears more than once; the last record wins".into(),
            );
        }
    }
    if !index.contains_key("/") {
        push(Severity::Fatal, None, "no record for the root `/`".into());
    }
    let acl_ids: HashSet<u64> = c.acls.iter().map(|(id, _)| *id).collect();
    let sessions: HashSet<i64> = c.sessions.iter().map(|s| s.id).collect();
    let zxid =
        c.header.zxid.unwrap_or(i64::try_from(c.header.meta.last_log_idx).unwrap_or(i64::MAX));
    let mut children: HashMap<&str, i64> = HashMap::new();
    for (i, n) in c.nodes.iter().enumerate() {
        if index.get(n.path.as_str()) != Some(&i) {
            continue; // an overwritten duplicate
        }
        let p = Some(n.path.as_str());
        if n.path.starts_with("/keeper/") {
            push(
                Severity::Fatal,
                p,
                "record under /keeper/, which Keeper regenerates (system node)".into(),
            );
        }
        if n.path == "/keeper" && (!n.data.is_empty() || n.stat.mzxid != 0) {
            push(Severity::Fatal, p, "/keeper must be empty with mzxid 0".into());
        }
        if let Some(parent) = parent_of(&n.path) {
            if index.contains_key(parent) {
                *children.entry(parent).or_default() += 1;
            } else {
                push(Severity::Fatal, p, format!("parent {parent} is missing"));
            }
        }
        if n.acl_id != 0 && n.acl_id != u64::MAX && !acl_ids.contains(&n.acl_id) {
            push(Severity::Fatal, p, format!("ACL id {} is not in the ACL map", n.acl_id));
        }
        if n.stat.mzxid > zxid {
            push(
                Severity::Warning,
                p,
                format!("mzxid {} is above the snapshot zxid {zxid}", n.stat.mzxid),
            );
        }
        if n.stat.ephemeral_owner != 0 && !sessions.contains(&n.stat.ephemeral_owner) {
            push(
                Severity::Warning,
                p,
                format!("ephemeral owner {:#x} is not a live session", n.stat.ephemeral_owner),
            );
        }
    }
    for (i, n) in c.nodes.iter().enumerate() {
        if index.get(n.path.as_str()) != Some(&i) {
            continue;
        }
        let real = children.get(n.path.as_str()).copied().unwrap_or(0);
        if n.ttl_ms.is_some() && real > 0 {
            push(Severity::Fatal, Some(&n.path), "TTL node has children".into());
        }
        let stored = if n.stat.ephemeral_owner != 0 { 0 } else { i64::from(n.stat.num_children) };
        if n.path != "/" && stored != real {
            push(
                Severity::Warning,
                Some(&n.path),
                format!("numChildren is {stored}, the node has {real}"),
            );
        }
    }
    for s in &c.sessions {
        if s.id >= c.header.session_id_counter {
            push(
                Severity::Warning,
                None,
                format!(
                    "session {:#x} is not below session_id_counter {:#x}",
                    s.id, c.header.session_id_counter
                ),
            );
        }
    }
    let v = c.header.digest_version;
    if matches!(v, digest_version::V4 | digest_version::V5) {
        let mut tree = keeper::TreeDigest::default();
        for (i, n) in c.nodes.iter().enumerate() {
            if index.get(n.path.as_str()) == Some(&i)
                && keeper::counts_in_tree_digest(n.path.as_bytes())
            {
                tree.add(keeper::node_digest(v, n.path.as_bytes(), &n.data, &n.stat, n.ttl_ms));
            }
        }
        if c.header.digest != Some(tree.0) {
            push(
                Severity::Warning,
                None,
                format!(
                    "stored digest (version {v}) is {:#x}, the nodes give {:#x}",
                    c.header.digest.unwrap_or(0),
                    tree.0
                ),
            );
        }
    }
    out
}
