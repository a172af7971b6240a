//! `keeperkit repair`.

use std::io::Write;

use keeperkit_storage::{RepairReport, StateCount};
use keeperkit_vfs::FileSystem;

use super::escape;
use crate::{CmdResult, Outcome, RepairArgs};

fn state(s: Option<StateCount>) -> String {
    s.map_or("not recoverable".to_string(), |s| format!("{} nodes up to {}", s.nodes, s.last))
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &RepairArgs, out: &mut dyn Write) -> CmdResult {
    let opts = keeperkit_storage::OpenOptions { format: args.format, ..Default::default() };
    let dir = keeperkit_storage::open(fs, &args.path, &opts)?;
    let plan = dir.plan_repair(args.backup.as_deref())?;
    let backup_dir = plan.backup_dir.clone();
    let r: RepairReport = if args.apply {
        dir.apply_repair(plan)?
    } else {
        RepairReport {
            applied: false,
            backup_dir: None,
            actions: plan.actions,
            backups: Vec::new(),
            refused: plan.refused,
            notes: plan.notes,
            state_before: plan.state_before,
            state_after: None,
            verify_after: None,
        }
    };
    let after_ok = r.verify_after.as_ref().is_none_or(|v| v.ok);
    let lost = match (r.state_before, r.state_after) {
        (Some(b), Some(a)) => a.nodes < b.nodes || a.last < b.last,
        _ => false,
    };
    if args.json {
        super::json_doc(out, &r)?;
    } else {
        for n in &r.notes {
            writeln!(out, "{}", escape(n))?;
        }
        if r.actions.is_empty() && r.refused.is_empty() {
            writeln!(
                out,
                "nothing to repair: {} is sound",
                escape(&args.path.display().to_string())
            )?;
        }
        let verb = if r.applied { "done" } else { "would" };
        for a in &r.actions {
            writeln!(out, "{verb}: {}", escape(a))?;
        }
        for b in &r.backups {
            writeln!(out, "backup: {}", escape(b))?;
        }
        for x in &r.refused {
            writeln!(out, "refused: {}\n  why: {}", escape(&x.finding.to_string()), x.reason)?;
        }
        if !r.applied && !r.actions.is_empty() && r.refused.is_empty() {
            writeln!(
                out,
                "dry run: nothing was changed; run again with --apply (backups go to {})",
                escape(&backup_dir)
            )?;
        }
        if !r.refused.is_empty() {
            writeln!(out, "nothing was changed: repair does not touch damage it cannot undo")?;
        }
        writeln!(out, "state before: {}", state(r.state_before))?;
        if r.applied {
            writeln!(out, "state after:  {}", state(r.state_after))?;
            if lost {
                writeln!(out, "warning: the repaired state holds less than before")?;
            }
        }
        if let Some(v) = &r.verify_after {
            for f in &v.findings {
                writeln!(out, "{}", escape(&f.to_string()))?;
            }
            writeln!(
                out,
                "verify after repair: {}",
                if v.ok { "OK" } else { "FAILED (see the findings above)" }
            )?;
        }
    }
    let clean = r.refused.is_empty() && after_ok && !lost && (r.applied || r.actions.is_empty());
    Ok(if clean { Outcome::Clean } else { Outcome::Found })
}
