//! `keeperkit recover --force-new-cluster DIR`: a lost quorum's survivor becomes a
//! one-node cluster (`keeperkit_raft::offline::force_new_cluster`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use keeperkit_raft::offline::{force_new_cluster, ForceError, ForceReport};
use keeperkit_vfs::FileSystem;

use crate::{CmdResult, Failure, Outcome};

/// `keeperkit recover ...`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example (replicas lost for good, no quorum left; node 1 chosen):\n  \
    keeperkit replicas /var/lib/kk1 /var/lib/kk2   (several survivors: pick the highest last term, then index)\n  \
    keeperkit recover --force-new-cluster /var/lib/kk1\n  \
    keeperkit serve /var/lib/kk1 --id 1 --peers ...   (the same command as before)\n\n\
    Offline, on a stopped replica: it becomes the only voter of a new cluster (a new cluster id and \
    a new membership epoch) and keeps every entry it holds, including the ones it cannot know were \
    committed (they are committed now). The other members stay as learners: started with their usual \
    command on an empty data directory, they are rebuilt from it and become voters again. Refused on \
    a directory a running server holds, or that is not a replica's.")]
pub struct RecoverArgs {
    /// The stopped replica's data directory.
    pub data_dir: PathBuf,
    /// Make it a one-node cluster keeping every entry it holds (after a lost quorum).
    #[arg(long, required = true)]
    pub force_new_cluster: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(fs: &Arc<dyn FileSystem>, args: &RecoverArgs, out: &mut dyn Write) -> CmdResult {
    let report = force_new_cluster(fs.clone(), &args.data_dir).map_err(|e| match e {
        ForceError::Refused(m) => Failure::usage(anyhow!("{m}"))
            .hint("stop the server first; give a replica's data directory (keeperkit serve --id)"),
        ForceError::Storage(e) => Failure::from(e),
    })?;
    if args.json {
        super::json_doc(out, &report)?;
    } else {
        text(&report, out)?;
    }
    Ok(Outcome::Clean)
}

fn list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

fn text(r: &ForceReport, out: &mut dyn Write) -> Result<(), Failure> {
    writeln!(
        out,
        "{}: node {} is now the only voter of cluster {} (was {})",
        r.dir, r.node, r.cluster, r.old_cluster
    )?;
    writeln!(
        out,
        "new membership epoch: entry {} in term {} (voters {}, learners {})",
        r.membership_index,
        r.membership_term,
        list(&r.voters),
        list(&r.learners)
    )?;
    writeln!(
        out,
        "it held: last index {} (term {}), commit index {} known, snapshot at {}; old voters {}, \
         learners {}",
        r.last_index,
        r.last_term,
        r.commit_index,
        r.snapshot_index,
        list(&r.old_voters),
        list(&r.old_learners)
    )?;
    match (r.uncertain_first, r.uncertain_last) {
        (Some(a), Some(b)) => {
            let terms: Vec<String> =
                r.uncertain_terms.iter().map(|t| format!("term {} from {}", t[1], t[0])).collect();
            writeln!(
                out,
                "kept without knowing whether a majority had them: {} entries, {a}..={b} ({}); \
                 they are committed now",
                r.uncertain_count,
                terms.join(", ")
            )?;
        }
        _ => writeln!(out, "every entry it holds was known to be committed")?,
    }
    writeln!(
        out,
        "may be lost: entries that only the lost replicas had (after index {}, or in place of \
         the uncertain ones). Run this on the most advanced survivor: compare them first with \
         `keeperkit replicas DIR...` (highest last term, then highest last index).",
        r.last_index
    )?;
    if r.was_rebuilding {
        writeln!(out, "it was being rebuilt from its leader: the rejoining marker was removed")?;
    }
    writeln!(
        out,
        "next: start it with its usual `keeperkit serve` command (it elects itself); a lost \
         member started with its usual command on an empty data directory is rebuilt from it \
         and becomes a voter again"
    )?;
    Ok(())
}
