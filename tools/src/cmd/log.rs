//! `keeperkit log`.

use std::io::Write;
use std::ops::ControlFlow;

use keeperkit_storage::findings::exit_status;
use keeperkit_storage::{LogEntry, LogRange, Position};
use keeperkit_vfs::FileSystem;

use super::{escape, outcome, preview};
use crate::load::print_findings;
use crate::{parse_zxid, CmdResult, Failure, LogArgs};

fn parse_index(s: &str) -> Result<u64, Failure> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    parsed.ok_or_else(|| {
        Failure::usage(anyhow::anyhow!("{s:?} is not a log index"))
            .hint("this log is addressed by log index: give it in decimal (1234)")
    })
}

fn text_line(e: &LogEntry) -> String {
    let pos = match (e.index, &e.zxid_hex) {
        (Some(i), _) => format!("{i:>10} term {:<4}", e.term.unwrap_or(0)),
        (None, Some(z)) => format!("{z:>12}"),
        (None, None) => String::new(),
    };
    let mut line = format!(
        "{pos} {} session {} cxid {} {:<16} {}",
        e.time.map_or("-".to_string(), super::iso_time),
        e.session_hex.as_deref().unwrap_or("-"),
        e.cxid.map_or("-".to_string(), |x| x.to_string()),
        e.op,
        e.paths.join(" "),
    );
    if let Some(r) = e.result.as_deref().filter(|r| *r != "ok") {
        line.push_str(&format!(" [{r}]"));
    }
    if let Some(v) = &e.value {
        line.push_str(&format!(" value={}", preview(Some(v.as_slice()), 40)));
    }
    line.push(' ');
    line.push_str(e.error.as_deref().unwrap_or(&e.detail));
    escape(&line)
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &LogArgs, verbose: bool, out: &mut dyn Write) -> CmdResult {
    let opts = keeperkit_storage::OpenOptions {
        format: args.format,
        log_dir: args.log_dir.clone(),
        ..Default::default()
    };
    let dir = keeperkit_storage::open(fs, &args.path, &opts)?;
    let point = |s: &Option<String>| -> Result<Option<Position>, Failure> {
        s.as_deref()
            .map(|v| match dir.addressed_by_index() {
                true => parse_index(v).map(Position::Index),
                false => parse_zxid(v).map(Position::Zxid),
            })
            .transpose()
    };
    let range = LogRange { from: point(&args.from)?, to: point(&args.to)? };
    let mut printed = 0u64;
    let mut err = None;
    let findings = dir.read_log(range, &mut |e| {
        printed += 1;
        let r = if args.json {
            super::json_line(out, &e)
        } else {
            writeln!(out, "{}", text_line(&e)).map_err(Failure::from)
        };
        match r {
            Ok(()) => ControlFlow::Continue(()),
            Err(f) => {
                err = Some(f);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    print_findings(&findings, verbose);
    if !args.json {
        writeln!(out, "{printed} entries")?;
    }
    Ok(outcome(exit_status(&findings)))
}
