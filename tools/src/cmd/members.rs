//! `keeperkit members`: read and change the membership of a replicated `keeperkit
//! serve`, move its leadership, and ask whether stopping a member would lose the
//! quorum. A thin client of a member's HTTP routes (`--http-port`); every request is
//! answered by the leader.

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use crate::{CmdResult, Failure, Outcome};

/// Exit status of a change refused because the membership is not at the expected
/// version (or another change is in flight).
pub const EXIT_STALE: u8 = 3;
/// Exit status of `can-stop` when stopping the member would lose the quorum.
pub const EXIT_UNSAFE: u8 = 4;

/// `keeperkit members ...`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    keeperkit members --server 127.0.0.1:24021\n  \
    keeperkit members --server 127.0.0.1:24021 --json\n  \
    keeperkit members add 4 10.0.0.4:2888:2181 --expect-version 306 --server 127.0.0.1:24021\n  \
    keeperkit members remove 4 --expect-version 309 --server 127.0.0.1:24021\n  \
    keeperkit members transfer --to 2 --server 127.0.0.1:24021\n  \
    keeperkit members can-stop 3 --server 127.0.0.1:24021 && systemctl restart keeperkit@3\n\n\
    --server is any member's --http-port: followers forward to the leader. The version is \
    the log index of the current membership entry (`version` in the listing); a change names \
    the version it was decided against and is refused when the membership moved since. \
    Changes go one member at a time: an added node becomes a learner, catches up, then a \
    voter (a node started with `serve --join` asks for this itself); the leader cannot be \
    removed (transfer first).\n\n\
    Exit status: 0 done (can-stop: stopping is safe), 2 bad usage, no leader, or the change \
    failed, 3 refused: the membership is not at --expect-version or a change is in flight, \
    4 can-stop: stopping that member now would lose the quorum.")]
pub struct MembersArgs {
    /// A member's HTTP address (its `serve --http-port`).
    #[arg(long, value_name = "HOST:HTTP_PORT", global = true)]
    pub server: Option<String>,
    /// Print the leader's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the answer (an add waits for its learner to catch up).
    #[arg(long, value_name = "SECS", default_value_t = 150, global = true)]
    pub timeout: u64,
    /// What to do (default: list the members).
    #[command(subcommand)]
    pub action: Option<MembersAction>,
}

/// `keeperkit members` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MembersAction {
    /// List the voters, the learners, the version and any change in flight (the default).
    List,
    /// Add node ID at HOST:RAFT_PORT:CLIENT_PORT: a learner, caught up, then a voter.
    Add {
        /// The new node's id (1..=255).
        id: u64,
        /// Its address: HOST:RAFT_PORT:CLIENT_PORT.
        addr: String,
        /// The membership version this change was decided against.
        #[arg(long, value_name = "V")]
        expect_version: u64,
    },
    /// Remove node ID (a voter or a learner; not the leader).
    Remove {
        /// The node's id.
        id: u64,
        /// The membership version this change was decided against.
        #[arg(long, value_name = "V")]
        expect_version: u64,
    },
    /// Move the leadership to voter ID and wait until it leads.
    Transfer {
        /// The voter to lead.
        #[arg(long, value_name = "ID")]
        to: u64,
    },
    /// Would stopping node ID now lose the quorum? Exit 0 if not, 4 if it would.
    CanStop {
        /// The node's id.
        id: u64,
    },
}

/// Runs the command.
pub fn run(args: &MembersArgs, out: &mut dyn Write) -> CmdResult {
    let server = args
        .server
        .as_deref()
        .ok_or_else(|| Failure::usage(anyhow!("--server HOST:HTTP_PORT is required")))?;
    let action = args.action.as_ref().unwrap_or(&MembersAction::List);
    let (method, path) = match action {
        MembersAction::List => ("GET", "/members".to_string()),
        MembersAction::Add { id, addr, expect_version } => {
            keeperkit_server::replica::parse_peer(addr).map_err(|e| Failure::usage(anyhow!(e)))?;
            ("POST", format!("/members/add?id={id}&addr={addr}&version={expect_version}"))
        }
        MembersAction::Remove { id, expect_version } => {
            ("POST", format!("/members/remove?id={id}&version={expect_version}"))
        }
        MembersAction::Transfer { to } => {
            let ms = args.timeout.saturating_mul(1000).saturating_sub(1000).max(1000);
            ("POST", format!("/members/transfer?to={to}&timeout_ms={ms}"))
        }
        MembersAction::CanStop { id } => ("GET", format!("/members/can-stop?id={id}")),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let (status, body) = keeperkit_server::replica::http_call(server, method, &path, timeout)
        .map_err(|e| Failure::usage(anyhow!(e)).hint("is --server a member's --http-port?"))?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| Failure::usage(anyhow!("{server}: HTTP {status}, not JSON ({e}): {body}")))?;
    if args.json {
        super::json_line(out, &v)?;
    }
    if status != 200 {
        let msg = v["error"].as_str().unwrap_or("failed").to_string();
        let code = v["code"].as_str().unwrap_or("failed");
        if !args.json {
            eprintln!("error: {msg} ({code})");
        }
        if status == 409 {
            return Ok(Outcome::Exit(EXIT_STALE));
        }
        if args.json {
            return Ok(Outcome::Exit(2));
        }
        return Err(Failure::usage(anyhow!("{msg} ({code})")));
    }
    match action {
        MembersAction::CanStop { id } => {
            let safe = v["safe"].as_bool().unwrap_or(false);
            if !args.json {
                let verdict = if safe { "yes" } else { "no" };
                writeln!(out, "{verdict}: node {id}: {}", v["reason"].as_str().unwrap_or(""))?;
                for r in v["voters"].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "  {}{}  reachable {}  lag {}",
                        r["id"],
                        if r["leader"] == true { " (leader)" } else { "" },
                        r["reachable"],
                        r["lag"]
                    )?;
                }
            }
            return Ok(if safe { Outcome::Clean } else { Outcome::Exit(EXIT_UNSAFE) });
        }
        MembersAction::Transfer { .. } if !args.json => {
            if v["moved"] == true {
                writeln!(
                    out,
                    "node {} leads (term {}), after {} ms",
                    v["leader"], v["term"], v["took_ms"]
                )?;
            } else {
                writeln!(out, "node {} already leads (term {})", v["leader"], v["term"])?;
            }
        }
        MembersAction::Add { id, .. } if !args.json => {
            writeln!(out, "node {id} added (a voter)")?;
            listing(&v, out)?;
        }
        MembersAction::Remove { id, .. } if !args.json => {
            writeln!(out, "node {id} removed")?;
            listing(&v, out)?;
        }
        MembersAction::List if !args.json => listing(&v, out)?,
        _ => {}
    }
    Ok(Outcome::Clean)
}

/// The human listing of a membership answer.
fn listing(v: &Value, out: &mut dyn Write) -> Result<(), Failure> {
    writeln!(
        out,
        "membership version {} (log id {}), leader {}, term {}",
        v["version"],
        v["membership_log_id"].as_str().unwrap_or("none"),
        v["leader"],
        v["term"]
    )?;
    for (title, key) in [("voters", "voters"), ("learners", "learners")] {
        let nodes = v[key].as_array().cloned().unwrap_or_default();
        if nodes.is_empty() {
            writeln!(out, "{title}: none")?;
            continue;
        }
        writeln!(out, "{title}:")?;
        for n in nodes {
            let lead = if n["id"] == v["leader"] { "  leader" } else { "" };
            writeln!(
                out,
                "  {}  raft {}  client port {}  lag {}{lead}",
                n["id"],
                n["raft"].as_str().unwrap_or("?"),
                n["client_port"],
                n["lag"]
            )?;
        }
    }
    match v["change_in_flight"].as_str() {
        Some(c) => writeln!(out, "change in flight: {c}")?,
        None => writeln!(out, "change in flight: none")?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_names_every_member() {
        let v: Value = serde_json::from_str(
            r#"{"version":306,"membership_log_id":"2-306","committed":true,"leader":1,"term":2,
            "voters":[{"id":1,"raft":"h:1","client_port":11,"matched":9,"lag":0},
                      {"id":4,"raft":"h:4","client_port":14,"matched":7,"lag":2}],
            "learners":[],"configs":[[1,4]],"change_in_flight":null}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        listing(&v, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "membership version 306 (log id 2-306), leader 1, term 2\nvoters:\n  \
             1  raft h:1  client port 11  lag 0  leader\n  4  raft h:4  client port 14  lag 2\n\
             learners: none\nchange in flight: none\n"
        );
    }
}
