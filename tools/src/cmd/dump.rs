//! `keeperkit dump`.

use std::io::Write;

use keeperkit_storage::dump::write_dump;
use keeperkit_vfs::FileSystem;

use crate::load::{finish, load, point, print_findings, timed};
use crate::{CmdResult, DumpArgs};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &DumpArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let p = point(args.at.at.as_deref(), args.at.at_index)?;
    let state = load(fs, &args.source, p, args.keep_orphan_ephemerals)?;
    print_findings(&state.report.findings, verbose);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    timed("walk", || write_dump(&state.tree, args.json, threads, out))?;
    Ok(finish(state))
}
