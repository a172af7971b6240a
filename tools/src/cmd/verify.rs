//! `keeperkit verify`.

use std::io::Write;

use keeperkit_storage::findings::{counts, exit_status};
use keeperkit_vfs::FileSystem;

use super::{escape, outcome};
use crate::load::open_source;
use crate::progress::Bar;
use crate::{CmdResult, VerifyArgs};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &VerifyArgs, out: &mut dyn Write) -> CmdResult {
    let dir = open_source(fs, &args.source, false)?;
    let mut bar = Bar::new("verifying");
    let r = dir.check_with(&mut bar)?;
    bar.finish();
    if args.json {
        super::json_doc(out, &r)?;
    } else {
        for f in &r.findings {
            writeln!(out, "{}", escape(&f.to_string()))?;
        }
        let (errors, warnings, _) = counts(&r.findings);
        writeln!(
            out,
            "{}: {} files, {} records, {} snapshots, {} digests checked, {} entries replayed; \
             {errors} errors, {warnings} warnings",
            if r.ok { "OK" } else { "FAILED" },
            r.files_checked,
            r.records_checked,
            r.snapshots_checked,
            r.digests_checked,
            r.entries_replayed,
        )?;
    }
    Ok(outcome(exit_status(&r.findings)))
}
