//! `keeperkit replicas DIR...`: replicas' data directories compared offline
//! (`keeperkit_storage::replicas::compare`).

use std::io::Write;
use std::path::PathBuf;

use keeperkit_raft::offline::describe_membership;
use keeperkit_storage::findings::has_errors;
use keeperkit_storage::replicas::compare_with;
use keeperkit_vfs::FileSystem;

use crate::{CmdResult, Outcome};

/// `keeperkit replicas ...`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    keeperkit replicas /var/lib/kk1 /var/lib/kk2 /var/lib/kk3\n  \
    keeperkit replicas /backup/keeper1/coordination /backup/keeper2/coordination --json\n\n\
    For each directory (native replicas, ClickHouse Keeper coordination directories): first and \
    last log index, last term, commit index (when recorded), newest snapshot, cluster and node \
    ids; the tree digest of each at the highest index all of them hold; the first index where two \
    logs diverge (another term, or other bytes). Reads only.\n\
    Exit status 0 when they agree (a replica only behind another agrees), 3 when they diverge \
    (logs, digests or cluster ids), 1 when a directory is damaged (compared up to the damage), \
    2 on an I/O or usage error.")]
pub struct ReplicasArgs {
    /// The data directories.
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// JSON output (one document).
    #[arg(long)]
    pub json: bool,
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &ReplicasArgs, out: &mut dyn Write) -> CmdResult {
    let c = compare_with(fs, &args.dirs, &describe_membership)?;
    let findings: Vec<_> = c.findings().cloned().collect();
    crate::load::print_findings(&findings, false);
    if args.json {
        super::json_doc(out, &c)?;
    } else {
        let at = c.common_index.map_or_else(|| "digest".to_string(), |i| format!("digest@{i}"));
        let head = [
            "path",
            "dialect",
            "cluster",
            "node",
            "first",
            "last",
            "term",
            "commit",
            "snapshot",
            "membership",
            &at,
        ];
        let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
        for r in &c.replicas {
            rows.push(vec![
                super::escape(&r.path),
                r.dialect.to_string(),
                r.cluster_id.clone().unwrap_or_else(|| "-".into()),
                opt(r.node_id),
                opt(r.first_index),
                opt(r.last_index),
                opt(r.last_term),
                opt(r.commit_index),
                opt(r.snapshot_index),
                r.membership.as_ref().map_or_else(
                    || "-".to_string(),
                    |m| {
                        let ids =
                            |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                        let mut t = format!("{} t{} voters {}", m.index, m.term, ids(&m.voters));
                        if !m.learners.is_empty() {
                            t.push_str(&format!(" learners {}", ids(&m.learners)));
                        }
                        t
                    },
                ),
                r.digest.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let widths: Vec<usize> = (0..head.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            writeln!(out, "{}", cells.join("  ").trim_end())?;
        }
        for r in &c.replicas {
            if let Some(e) = &r.digest_error {
                writeln!(
                    out,
                    "{}: no digest at the common index: {}",
                    super::escape(&r.path),
                    super::escape(e)
                )?;
            }
            if r.rebuilding {
                writeln!(out, "{}: was being rebuilt from its leader", super::escape(&r.path))?;
            }
        }
        for d in &c.disagreements {
            writeln!(out, "DIVERGED: {}", super::escape(d))?;
        }
        if c.agree {
            match c.common_index {
                Some(i) => writeln!(
                    out,
                    "the {} replicas agree: no log diverges, same digest at index {i}",
                    c.replicas.len()
                )?,
                None => writeln!(out, "the {} replicas agree: no log diverges", c.replicas.len())?,
            }
        }
    }
    Ok(if c.diverged() {
        Outcome::Diverged
    } else if has_errors(&findings) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
