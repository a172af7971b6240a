//! `keeperkit stats`.

use std::io::Write;

use keeperkit_storage::stats::compute;
use keeperkit_vfs::FileSystem;

use crate::load::{finish, load, point, print_findings, timed};
use crate::{CmdResult, StatsArgs};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &StatsArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let state = load(fs, &args.source, point(args.at.at.as_deref(), args.at.at_index)?, false)?;
    print_findings(&state.report.findings, verbose);
    let s = timed("walk", || compute(&state.tree, args.top));
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
    Ok(finish(state))
}
