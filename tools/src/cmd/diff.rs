//! `keeperkit diff`.

use std::io::Write;
use std::panic::resume_unwind;

use keeperkit_tree::Change;
use keeperkit_vfs::FileSystem;
use serde::Serialize;
use serde_json::Value;

use crate::json::JsonNode;
use crate::load::{finish, load, point, print_findings};
use crate::{CmdResult, DiffArgs, Failure, Outcome, Source};

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

fn source(path: &std::path::Path) -> Source {
    Source { path: path.to_path_buf(), format: None, log_dir: None, snapshot: None }
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &DiffArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let side =
        |dir, at: &Option<String>, i| load(fs, &source(dir), point(at.as_deref(), i)?, false);
    // The two sides recover at once (each on its own core when there are two); A's
    // error comes first when both fail.
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| side(&args.b, &args.at_b, args.at_index_b));
        (side(&args.a, &args.at_a, args.at_index_a), b.join().unwrap_or_else(|p| resume_unwind(p)))
    });
    let (a, b) = (a?, b?);
    print_findings(&a.report.findings, verbose);
    print_findings(&b.report.findings, verbose);
    let system = |p: &str| p == "/zookeeper/config" || p.starts_with("/zookeeper/quota/");
    let skip = |p: &str| args.ignore_system && system(p);
    let (mut added, mut removed, mut changed) = (0usize, 0usize, 0usize);
    a.tree.diff_sorted(&b.tree, skip, |path, change| -> Result<(), Failure> {
        let d = match change {
            Change::Removed(_) => {
                removed += 1;
                NodeDiff { path: path.to_owned(), change: "removed", fields: vec![] }
            }
            Change::Added(_) => {
                added += 1;
                NodeDiff { path: path.to_owned(), change: "added", fields: vec![] }
            }
            Change::Changed(x, y) => {
                changed += 1;
                let fields =
                    field_diffs(&JsonNode::from_node(path, &x), &JsonNode::from_node(path, &y));
                NodeDiff { path: path.to_owned(), change: "changed", fields }
            }
        };
        if args.json {
            super::json_line(out, &d)?;
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
        Ok(())
    })?;
    let total = added + removed + changed;
    if !args.json {
        writeln!(out, "{total} differences: {added} added, {removed} removed, {changed} changed")?;
    }
    // Identical only when both states are everything their files hold.
    let complete = finish(a) == Outcome::Clean && finish(b) == Outcome::Clean;
    Ok(if total == 0 && complete { Outcome::Clean } else { Outcome::Found })
}
