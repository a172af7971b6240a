//! `keeperkit dump`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use keeperkit_vfs::FileSystem;

use crate::json::JsonNode;
use crate::load::{load, point, print_findings};
use crate::{CmdResult, DumpArgs, Failure, Outcome};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &DumpArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let p = point(args.at.at.as_deref(), args.at.at_index)?;
    let state = load(fs, &args.source, p, args.keep_orphan_ephemerals)?;
    print_findings(&state.report.findings, verbose);
    let mut err = None;
    // Nodes share interned ACL lists: each list is rendered once.
    let mut acls: HashMap<u32, String> = HashMap::new();
    let mut b64 = String::new();
    state.tree.for_each_sorted(|path, node| {
        if err.is_some() {
            return;
        }
        let r = if args.json {
            let acl = acls.entry(node.acl_id()).or_insert_with(|| JsonNode::acl_json(&node));
            JsonNode::write_line(out, path, &node, acl, &mut b64).map_err(Failure::from)
        } else {
            let s = node.stat();
            writeln!(
                out,
                "{}  data={} czxid={:#x} mzxid={:#x} pzxid={:#x} version={} cversion={} \
                 aversion={} owner={:#x} children={} acl={}",
                // Escaped only when needed (nearly never): no copy per line.
                if path.chars().any(char::is_control) {
                    Cow::Owned(super::escape(path))
                } else {
                    Cow::Borrowed(path)
                },
                super::preview(node.data(), 40),
                s.czxid,
                s.mzxid,
                s.pzxid,
                s.version,
                s.cversion,
                s.aversion,
                s.ephemeral_owner,
                s.num_children,
                acls.entry(node.acl_id()).or_insert_with(|| node
                    .acl()
                    .iter()
                    .map(|a| super::escape(&format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)))
                    .collect::<Vec<_>>()
                    .join(","))
            )
            .map_err(Failure::from)
        };
        if let Err(e) = r {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(if state.report.has_errors() { Outcome::Found } else { Outcome::Clean })
}
