//! `keeperkit diff`.

use std::cmp::Ordering;
use std::io::Write;

use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;
use serde::Serialize;
use serde_json::Value;

use crate::json::JsonNode;
use crate::load::{load, point, print_findings};
use crate::{CmdResult, DiffArgs, Outcome, Source};

/// One differing field.
#[derive(Debug, Serialize, PartialEq, Eq, Clone)]
pub struct FieldDiff {
    /// Field name (`data`, `acl`, or a stat field name).
    pub field: String,
    /// Value in A.
    pub a: Value,
    /// Value in B.
    pub b: Value,
}

/// One differing node.
#[derive(Debug, Serialize, PartialEq, Eq, Clone)]
pub struct NodeDiff {
    /// The path.
    pub path: String,
    /// `added` (only in B), `removed` (only in A) or `changed`.
    pub change: &'static str,
    /// The fields that differ (for `changed`).
    pub fields: Vec<FieldDiff>,
}

fn nodes(tree: &DataTree, ignore_system: bool) -> Vec<JsonNode> {
    let mut v = Vec::with_capacity(tree.node_count());
    tree.for_each_sorted(|p, n| {
        if ignore_system && (p == "/zookeeper/config" || p.starts_with("/zookeeper/quota/")) {
            return;
        }
        v.push(JsonNode::from_node(p, &n));
    });
    v
}

fn to_map(n: &JsonNode) -> serde_json::Map<String, Value> {
    match serde_json::to_value(n) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

fn field_diffs(a: &JsonNode, b: &JsonNode) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    if a.data != b.data {
        out.push(FieldDiff {
            field: "data".into(),
            a: a.data.clone().map_or(Value::Null, Value::String),
            b: b.data.clone().map_or(Value::Null, Value::String),
        });
    }
    let (ma, mb) = (to_map(a), to_map(b));
    if let (Some(Value::Object(sa)), Some(Value::Object(sb))) = (ma.get("stat"), mb.get("stat")) {
        for (k, va) in sa {
            let vb = sb.get(k).cloned().unwrap_or(Value::Null);
            if *va != vb {
                out.push(FieldDiff { field: k.clone(), a: va.clone(), b: vb });
            }
        }
    }
    if a.acl != b.acl {
        out.push(FieldDiff {
            field: "acl".into(),
            a: ma.get("acl").cloned().unwrap_or(Value::Null),
            b: mb.get("acl").cloned().unwrap_or(Value::Null),
        });
    }
    out
}

/// Differences between two sorted node lists.
pub fn diff_nodes(a: &[JsonNode], b: &[JsonNode]) -> Vec<NodeDiff> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.path.as_bytes().cmp(y.path.as_bytes()),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                out.push(NodeDiff { path: a[i].path.clone(), change: "removed", fields: vec![] });
                i += 1;
            }
            Ordering::Greater => {
                out.push(NodeDiff { path: b[j].path.clone(), change: "added", fields: vec![] });
                j += 1;
            }
            Ordering::Equal => {
                let f = field_diffs(&a[i], &b[j]);
                if !f.is_empty() {
                    out.push(NodeDiff { path: a[i].path.clone(), change: "changed", fields: f });
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn source(path: &std::path::Path) -> Source {
    Source { path: path.to_path_buf(), format: None, log_dir: None, snapshot: None }
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &DiffArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let a = load(fs, &source(&args.a), point(args.at_a.as_deref(), args.at_index_a)?, false)?;
    print_findings(&a.report.findings, verbose);
    let b = load(fs, &source(&args.b), point(args.at_b.as_deref(), args.at_index_b)?, false)?;
    print_findings(&b.report.findings, verbose);
    let diffs =
        diff_nodes(&nodes(&a.tree, args.ignore_system), &nodes(&b.tree, args.ignore_system));
    for d in &diffs {
        if args.json {
            super::json_line(out, d)?;
        } else {
            let sign = match d.change {
                "added" => "+",
                "removed" => "-",
                _ => "~",
            };
            write!(out, "{sign} {}", super::escape(&d.path))?;
            for f in &d.fields {
                write!(out, "  {}: {} -> {}", f.field, f.a, f.b)?;
            }
            writeln!(out)?;
        }
    }
    if !args.json {
        let count = |c: &str| diffs.iter().filter(|d| d.change == c).count();
        writeln!(
            out,
            "{} differences: {} added, {} removed, {} changed",
            diffs.len(),
            count("added"),
            count("removed"),
            count("changed")
        )?;
    }
    // Identical only when both states are everything their files hold.
    let complete = !a.report.has_errors() && !b.report.has_errors();
    Ok(if diffs.is_empty() && complete { Outcome::Clean } else { Outcome::Found })
}
