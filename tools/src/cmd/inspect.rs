//! `keeperkit inspect`.

use std::io::Write;

use keeperkit_storage::findings::exit_status;
use keeperkit_vfs::FileSystem;

use super::{escape, outcome};
use crate::load::open_source;
use crate::{CmdResult, InspectArgs};

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &InspectArgs, out: &mut dyn Write) -> CmdResult {
    let dir = open_source(fs, &args.source, false)?;
    let i = dir.inspect()?;
    if args.json {
        super::json_doc(out, &i)?;
    } else {
        write!(out, "{}", escape_lines(&i.to_string()))?;
    }
    Ok(outcome(exit_status(&i.findings)))
}

/// Escapes control characters inside each line of `text`.
fn escape_lines(text: &str) -> String {
    text.lines().map(|l| escape(l) + "\n").collect()
}
