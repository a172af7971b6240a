//! `keeperkit repair`.

use std::io::Write;

use keeperkit_storage::zookeeper::scan as zkscan;
use keeperkit_storage::zookeeper::ZkLayout;
use keeperkit_storage::Dialect;
use keeperkit_vfs::FileSystem;

use crate::load::dialect_of;
use crate::{CmdResult, Outcome, RepairArgs};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &RepairArgs, out: &mut dyn Write) -> CmdResult {
    match dialect_of(fs, &args.path, args.format)? {
        Dialect::Native => super::native::repair(
            fs,
            &args.path,
            args.apply,
            args.backup.as_deref(),
            args.json,
            out,
        ),
        Dialect::ZooKeeper => zookeeper(fs, args, out),
        Dialect::ClickHouse => super::clickhouse::repair(
            fs,
            &args.path,
            args.apply,
            args.backup.as_deref(),
            args.json,
            out,
        ),
    }
}

/// ZooKeeper needs no repair for a torn tail (it ignores it and starts a new log on
/// its next start), and anything else is damage a checksum cannot be recomputed over:
/// repair explains, and changes nothing.
fn zookeeper(fs: &dyn FileSystem, args: &RepairArgs, out: &mut dyn Write) -> CmdResult {
    let layout = ZkLayout::locate(fs, &args.path, None)?;
    let scan = zkscan::scan(fs, &layout)?;
    let problems = super::verify::check_scan(&scan);
    let errors: Vec<_> = problems.iter().filter(|p| p.severity == "error").collect();
    if args.json {
        #[derive(serde::Serialize)]
        struct J<'a> {
            applied: bool,
            actions: Vec<String>,
            refused: Vec<&'a super::verify::Problem>,
        }
        super::json_doc(out, &J { applied: false, actions: vec![], refused: errors.clone() })?;
    } else {
        for p in problems.iter().filter(|p| p.kind == "torn_tail") {
            writeln!(
                out,
                "ok as is: {} ends with a partial record at byte {}; ZooKeeper ignores it and \
                 writes a new log file on its next start",
                p.file,
                p.offset.unwrap_or(0)
            )?;
        }
        for p in &errors {
            writeln!(
                out,
                "refused: {} ({}): {}\n  why: ZooKeeper refuses to load this; recomputing a \
                 checksum would make it serve bad bytes. Recover the state before the damage \
                 with `keeperkit dump --at ZXID`, or restore the file from another server.",
                p.file, p.kind, p.message
            )?;
        }
        if errors.is_empty() {
            writeln!(out, "nothing to repair in {}", layout.snap_dir.display())?;
        }
    }
    Ok(if errors.is_empty() { Outcome::Clean } else { Outcome::Found })
}
