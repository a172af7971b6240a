//! `keeperkit sessions`.

use std::io::Write;

use keeperkit_vfs::FileSystem;
use serde::Serialize;

use crate::load::{finish, load, point, print_findings};
use crate::{CmdResult, SessionsArgs};

#[derive(Serialize)]
struct JsonSession {
    id: i64,
    id_hex: String,
    timeout_ms: i32,
    /// Authenticated ids; ZooKeeper snapshots do not store them (always empty there).
    auth: Vec<String>,
    ephemerals: usize,
}

/// Runs the command.
pub fn run(
    fs: &dyn FileSystem,
    args: &SessionsArgs,
    verbose: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let state = load(fs, &args.source, point(args.at.at.as_deref(), args.at.at_index)?, false)?;
    print_findings(&state.report.findings, verbose);
    let sessions = state.tree.sessions();
    if !args.json {
        writeln!(out, "{:<20} {:>10} {:>10}  auth", "session", "timeout_ms", "ephemerals")?;
    }
    for s in &sessions {
        // `scheme:id`, as `addauth` gave them (kept for ClickHouse Keeper sessions).
        let auth: Vec<String> = state
            .tree
            .session_auths(s.id)
            .iter()
            .map(|a| format!("{}:{}", a.scheme, a.id))
            .collect();
        if args.json {
            super::json_line(
                out,
                &JsonSession {
                    id: s.id.0,
                    id_hex: format!("{:#x}", s.id.0),
                    timeout_ms: s.timeout_ms,
                    auth: auth.clone(),
                    ephemerals: s.ephemerals,
                },
            )?;
        } else {
            writeln!(
                out,
                "{:<20} {:>10} {:>10}  {}",
                format!("{:#x}", s.id.0),
                s.timeout_ms,
                s.ephemerals,
                if auth.is_empty() { "-".to_string() } else { super::escape(&auth.join(",")) }
            )?;
        }
    }
    if !args.json {
        writeln!(out, "{} sessions", sessions.len())?;
    }
    Ok(finish(state))
}
