//! `keeperkit dump`.

use std::io::Write;

use anyhow::anyhow;
use keeperkit_vfs::FileSystem;

use crate::json::JsonNode;
use crate::load::load_state;
use crate::{parse_zxid, CmdResult, DumpArgs, Failure, Outcome};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &DumpArgs, out: &mut dyn Write) -> CmdResult {
    let dialect = crate::load::dialect_of(fs, &args.source.path, args.source.format)?;
    let native = dialect == keeperkit_storage::Dialect::Native;
    let clickhouse = dialect == keeperkit_storage::Dialect::ClickHouse;
    if args.at_index.is_some() && !native && !clickhouse {
        return Err(Failure::usage(anyhow!(
            "--at-index applies to Raft-style logs (ClickHouse Keeper, native); ZooKeeper \
             data is addressed by zxid"
        ))
        .hint("use --at ZXID"));
    }
    let at = args.at.as_deref().map(parse_zxid).transpose()?;
    let state = match args.at_index {
        Some(n) if native => crate::load::load_native(fs, &args.source.path, Some(n))?,
        Some(n) => crate::load::load_clickhouse(fs, &args.source, Some(n))?,
        _ => load_state(fs, &args.source, at, args.keep_orphan_ephemerals)?,
    };
    state.print_notes(false);
    let mut err = None;
    state.tree.for_each_sorted(|path, node| {
        if err.is_some() {
            return;
        }
        let r = if args.json {
            super::json_line(out, &JsonNode::from_node(path, &node))
        } else {
            let s = node.stat();
            writeln!(
                out,
                "{path}  data={} czxid={:#x} mzxid={:#x} pzxid={:#x} version={} cversion={} \
                 aversion={} owner={:#x} children={} acl={}",
                super::preview(node.data(), 40),
                s.czxid,
                s.mzxid,
                s.pzxid,
                s.version,
                s.cversion,
                s.aversion,
                s.ephemeral_owner,
                s.num_children,
                node.acl()
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                    .collect::<Vec<_>>()
                    .join(",")
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
    Ok(if state.has_errors() { Outcome::Found } else { Outcome::Clean })
}
