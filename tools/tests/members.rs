//! The membership recipes of docs/OPERATIONS.md with the `keeperkit` binary, as
//! processes on 127.0.0.1: three `keeperkit serve` replicas; `keeperkit members`
//! lists them; an add against an old version exits 3 and changes nothing; a fourth node
//! started with `serve --join` becomes a voter; `members can-stop` says yes (exit 0);
//! `members transfer` moves the leadership to the new node and returns once it leads;
//! the old leader is removed (and says so); with one of the three voters left stopped,
//! `members can-stop` of another exits 4, naming the stopped one.
//!
//! Guards against: the exit codes of the contract (3 stale, 4 unsafe) drifting; a
//! joined node that does not become a voter; a transfer that returns before the new
//! leader leads. Bounded in time (two minutes at most).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_bounded, s, Run, RSS_BOUND};

const BASE: u16 = 24250;

fn spec(i: u16) -> String {
    format!("{i}=127.0.0.1:{}:{}", BASE + i, BASE + 10 + i)
}

fn http(i: u16) -> String {
    format!("127.0.0.1:{}", BASE + 20 + i)
}

struct Node(Child);

impl Node {
    fn start(dir: &Path, id: u16, extra: &[&str]) -> Node {
        let peers = if extra.is_empty() {
            (1..=3).map(spec).collect::<Vec<_>>().join(",")
        } else {
            spec(id)
        };
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
            .args(["serve", s(dir), "--id", &id.to_string(), "--peers", &peers])
            .args(["--http-port", &(BASE + 20 + id).to_string(), "--heartbeat-ms", "50"])
            .args(if extra.is_empty() { &["--bootstrap"][..] } else { extra })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Node(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn members(args: &[&str]) -> Run {
    let mut all = vec!["members"];
    all.extend_from_slice(args);
    let r = run_bounded(&all, Duration::from_secs(60), RSS_BOUND);
    r.assert_sane(&format!("{all:?}"));
    r
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let r = members(&a);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {r:?}"))
}

fn status(i: u16) -> serde_json::Value {
    keeperkit_server::replica::http_call(&http(i), "GET", "/status", Duration::from_secs(2))
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn wait(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn join_transfer_remove_and_can_stop_through_the_cli() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |i: u16| tmp.path().join(format!("n{i}"));
    let mut nodes: Vec<Option<Node>> =
        (1..=3).map(|i| Some(Node::start(&dir(i), i, &[]))).collect();
    let leader = || (1..=4).find(|&i| status(i)["state"] == "leader" && status(i)["ready"] == true);
    wait("a leader", 30, || leader().is_some());
    let lead = leader().unwrap();
    let server = http((1..=3).find(|&i| i != lead).unwrap());

    let listing = members(&["--server", &server]);
    assert_eq!(listing.code, Some(0), "{listing:?}");
    assert!(listing.stdout.contains(&format!("raft 127.0.0.1:{}", BASE + 1)), "{listing:?}");
    let v = json(&["--server", &server])["version"].as_u64().unwrap();

    // Stale: refused with exit 3, nothing changes.
    let addr4 = format!("127.0.0.1:{}:{}", BASE + 4, BASE + 14);
    let stale = v + 3;
    let r =
        members(&["add", "4", &addr4, "--expect-version", &stale.to_string(), "--server", &server]);
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("stale_version"), "{r:?}");
    assert_eq!(json(&["--server", &server])["version"], v);

    // A fourth node joins.
    let _four = Node::start(&dir(4), 4, &["--join", &server]);
    wait("node 4 a ready voter", 60, || {
        let st = status(4);
        st["ready"] == true && st["voters"].as_array().is_some_and(|v| v.len() == 4)
    });
    let r = members(&["can-stop", "4", "--server", &server]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("yes:"), "{r:?}");

    // The leadership moves to node 4; the command returns once it leads.
    let r = members(&["transfer", "--to", "4", "--server", &server]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("node 4 leads"), "{r:?}");
    assert_eq!(status(4)["state"], "leader");

    // The old leader leaves.
    let v = json(&["--server", &http(4)])["version"].as_u64().unwrap();
    let r = members(&[
        "remove",
        &lead.to_string(),
        "--expect-version",
        &v.to_string(),
        "--server",
        &http(4),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    wait("the old leader says it was removed", 10, || status(lead)["removed"] == true);
    nodes[usize::from(lead - 1)] = None;

    // Voters now: the two others and node 4. One of them stopped: stopping another
    // would lose the quorum.
    let others: Vec<u16> = (1..=3).filter(|&i| i != lead).collect();
    nodes[usize::from(others[0] - 1)] = None;
    let r = members(&["can-stop", &others[1].to_string(), "--server", &http(4)]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stdout.contains(&format!("node {} does not answer", others[0])), "{r:?}");
    let r = members(&["can-stop", &others[0].to_string(), "--server", &http(4), "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}
