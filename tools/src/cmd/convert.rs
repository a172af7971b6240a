//! `keeperkit convert`.

use std::io::Write;
use std::sync::Arc;

use anyhow::anyhow;
use keeperkit_storage::convert::{self, ConvertOptions, ConvertReport};
use keeperkit_vfs::FileSystem;
use serde::Serialize;

use crate::load::{load, point, print_findings};
use crate::{CmdResult, ConvertArgs, Failure, Outcome, Source};

#[derive(Serialize)]
struct JsonConvert {
    dst: String,
    to: String,
    nodes: u64,
    sessions: u64,
    files: Vec<String>,
    mappings: Vec<(String, String)>,
}

/// Runs the command.
pub fn run(
    fs: &Arc<dyn FileSystem>,
    args: &ConvertArgs,
    verbose: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let source = Source {
        path: args.src.clone(),
        format: args.format,
        log_dir: args.log_dir.clone(),
        snapshot: None,
    };
    let state = load(&**fs, &source, point(args.at.at.as_deref(), args.at.at_index)?, false)?;
    print_findings(&state.report.findings, verbose);
    if state.report.has_errors() {
        return Err(Failure {
            error: anyhow!("the source state is incomplete; nothing was written"),
            corruption: true,
            hint: Some(
                "convert a point in time before the damage with --at ZXID, or repair the source"
                    .into(),
            ),
        });
    }
    let opts = ConvertOptions {
        lossy: args.lossy,
        zookeeper_compression: args.compression.clone(),
        clickhouse_version: args.clickhouse_version,
        jute_maxbuffer: args.jute_maxbuffer,
    };
    let to = args.to;
    let mut bar = crate::progress::Bar::new(&format!("writing {}", args.dst.display()));
    let report: ConvertReport =
        convert::write_state(fs, &state, to, &args.src, &args.dst, &opts, &mut bar)?;
    bar.finish();
    let j = JsonConvert {
        dst: report.dst.display().to_string(),
        to: args.to.to_string(),
        nodes: report.nodes,
        sessions: report.sessions,
        files: report.files.iter().map(|f| f.display().to_string()).collect(),
        mappings: report.mappings.iter().map(|m| (m.what.clone(), m.change.clone())).collect(),
    };
    if args.json {
        super::json_doc(out, &j)?;
    } else {
        writeln!(
            out,
            "wrote {} ({}): {} znodes, {} sessions, {} files",
            j.dst,
            j.to,
            j.nodes,
            j.sessions,
            j.files.len()
        )?;
        for (what, change) in &j.mappings {
            writeln!(out, "  mapped {what}: {change}")?;
        }
    }
    Ok(Outcome::Clean)
}
