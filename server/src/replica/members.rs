//! The membership of a replicated service, for its operator: read it, change it one
//! member at a time against an expected version, move the leadership, and ask whether
//! stopping a member now would lose the quorum.
//!
//! Every request is answered by the leader: a follower forwards it (an application
//! call on the Raft port) and returns the leader's answer. The HTTP routes (on
//! `--http-port`) and the `keeperkit members` command are thin layers over
//! [`Replica::admin`]; every answer is one JSON object.
//!
//! # The version
//!
//! The membership's version is the **log index of the entry that holds the current
//! membership configuration** (openraft's membership log id, `membership_log_id` in
//! `/status`, without its term). Every change appends new membership entries, so the
//! version only grows and never names two configurations. A change names the version
//! it was decided against (`version=V`); when the membership moved since, or a change
//! is still in flight, it is refused (HTTP 409, `code` `stale_version` or
//! `change_in_flight`) and nothing happens.
//!
//! # Changes
//!
//! - **add** (`id`, `addr` = `HOST:RAFT_PORT:CLIENT_PORT`): the node becomes a learner
//!   (a logged change), is brought up to date (a snapshot and the log after it), and
//!   becomes a voter (a second logged change, a joint configuration first as openraft
//!   does). The node must be running: started with `--join`, or without `--bootstrap`
//!   on an empty directory (it then waits until a leader contacts it). It never votes
//!   before it is a voter.
//! - **remove** (`id`): a voter leaves through a joint configuration, a learner at
//!   once. The leader cannot be removed (move the leadership first). The leader then
//!   tells the removed node, which writes a `removed` file in its data directory, stops
//!   voting and campaigning, refuses writes, and says so in `/ready` and `/status`; a
//!   node that learns its removal from the log does the same. A node removed while it
//!   was down hears of it neither way: restarted on its old directory, its log still
//!   names it a voter and it campaigns. Every member refuses a vote request from a
//!   node its committed membership does not name (when the candidate's log holds
//!   nothing newer than what the member applied) with a distinct answer, and the
//!   candidate, on that answer, marks itself removed the same way. It never starts
//!   again on that directory.
//! - **join**: what `keeperkit serve --join` asks: an add of the caller itself, where
//!   "already a member" is no error (a node whose directory was wiped is then rebuilt
//!   through its rebuild request, see the replica's module docs).
//!
//! # Leadership transfer
//!
//! openraft 0.9 has no transfer call. The leader stops its heartbeats and elections,
//! holds new proposals back (at most [`TRANSFER_HOLD`] each), waits until the target
//! holds its whole log, and asks the target to campaign at once (openraft's
//! `trigger().elect()`). The old leader grants the vote once the target's log is as
//! long as its own; other voters grant it once their leader lease lapses. The request
//! returns when the old leader sees the target lead, or fails after its timeout; the
//! old leader's heartbeats and elections are back on either way.
//!
//! # Quorum check
//!
//! `can-stop` counts the voters other than the one to stop that are healthy: the
//! leader itself, and every follower that answers a probe within a second and is at
//! most [`UP_TO_DATE_LAG`] entries behind the leader's log. Stopping is safe when
//! they are still a majority of the voters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keeperkit_raft::net::APP;
use openraft::{BasicNode, ChangeMembers};
use serde_json::{json, Value};
use tracing::{error, info, warn};

use super::{
    parse_id, parse_peer, Metrics, Replica, ADMIN, ELECT, PROBE, REMOVED, REMOVED_FILE, WHO,
};

/// How long a leadership transfer holds each new proposal back.
pub(crate) const TRANSFER_HOLD: Duration = Duration::from_secs(3);

/// A follower at most this many entries behind the leader's log is up to date (as
/// `/ready` counts it).
pub(crate) const UP_TO_DATE_LAG: u64 = 1000;

/// How long a new learner may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a forwarded request may take (an add waits for its learner).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(150);

/// How long a probe of a member may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a replica keeps about membership beyond openraft's state.
#[derive(Default)]
pub(crate) struct State {
    /// A change being made by this leader, described.
    in_flight: Mutex<Option<String>>,
    /// A leadership transfer is running on this leader.
    transferring: AtomicBool,
    /// This node was removed from the cluster.
    removed: AtomicBool,
    /// Nodes this leader made voters, with the incarnation they had then.
    promoted: Mutex<HashMap<u64, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(crate) fn transferring(&self) -> bool {
        self.transferring.load(Ordering::SeqCst)
    }

    /// The incarnation node `node` had when this leader made it a voter.
    pub(crate) fn promoted(&self, node: u64) -> Option<u64> {
        lock(&self.promoted).get(&node).copied()
    }

    /// Describes a change in flight until the guard drops.
    pub(crate) fn flight(&self, what: String) -> Flight<'_> {
        *lock(&self.in_flight) = Some(what);
        Flight(self)
    }
}

/// Clears the change in flight when dropped.
pub(crate) struct Flight<'a>(&'a State);

impl Flight<'_> {
    fn set(&self, what: String) {
        *lock(&self.0.in_flight) = Some(what);
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        *lock(&self.0.in_flight) = None;
    }
}

/// A refused or failed request: the HTTP status, a stable code and a text.
#[derive(Debug)]
struct Refusal {
    status: u16,
    code: &'static str,
    msg: String,
    version: Option<u64>,
}

fn refuse(status: u16, code: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal { status, code, msg: msg.into(), version: None }
}

fn bad(msg: impl Into<String>) -> Refusal {
    refuse(400, "bad_request", msg)
}

impl Refusal {
    fn answer(&self) -> (u16, String) {
        let mut v = json!({"error": self.msg, "code": self.code});
        if let Some(ver) = self.version {
            v["version"] = json!(ver);
        }
        (self.status, format!("{v}\n"))
    }
}

/// The membership version: the log index of the current membership entry.
pub(crate) fn version_of(m: &Metrics) -> u64 {
    m.membership_config.log_id().map_or(0, |l| l.index)
}

/// `HOST:RAFT_PORT[;CLIENT_PORT]` split.
fn split_addr(addr: &str) -> (&str, Option<u16>) {
    match addr.split_once(';') {
        Some((raft, client)) => (raft, client.parse().ok()),
        None => (addr, None),
    }
}

/// A request's operation and its `key=value` parameters (`op?k=v&k=v`).
fn parse_req(req: &str) -> (&str, BTreeMap<&str, &str>) {
    let (op, q) = req.split_once('?').unwrap_or((req, ""));
    let params = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    (op, params)
}

fn param<'a>(q: &BTreeMap<&str, &'a str>, key: &str) -> Result<&'a str, Refusal> {
    q.get(key).copied().ok_or_else(|| bad(format!("missing parameter {key}")))
}

fn id_param(q: &BTreeMap<&str, &str>, key: &str) -> Result<u64, Refusal> {
    parse_id(param(q, key)?).map_err(bad)
}

fn version_param(q: &BTreeMap<&str, &str>) -> Result<u64, Refusal> {
    let v = param(q, "version")?;
    v.parse().map_err(|_| bad(format!("version {v:?} is not a number")))
}

impl Replica {
    /// Whether this node was removed from its cluster.
    pub(crate) fn is_removed(&self) -> bool {
        self.mstate.removed.load(Ordering::SeqCst)
    }

    /// A membership request (`op?k=v&...`, see the module docs), answered by the
    /// leader: here when this node leads, forwarded otherwise. Returns the HTTP status
    /// and the JSON body.
    pub(crate) async fn admin(&self, req: &str) -> (u16, String) {
        let mut last = refuse(503, "no_leader", "no leader known");
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(self.election_ms())).await;
            }
            if self.is_leader() {
                return self.admin_here(req).await;
            }
            let Some((leader, addr)) = self.leader() else { continue };
            let mut msg = vec![ADMIN];
            msg.extend_from_slice(req.as_bytes());
            match self.peers.call(leader, &addr, APP, &msg, ADMIN_TIMEOUT).await {
                Ok(b) if b.len() >= 2 => {
                    let status = u16::from_le_bytes([b[0], b[1]]);
                    let body = String::from_utf8_lossy(&b[2..]).into_owned();
                    if status == 503 && body.contains("\"not_leader\"") {
                        last = refuse(503, "no_leader", format!("node {leader} stopped leading"));
                        continue;
                    }
                    return (status, body);
                }
                Ok(_) => return refuse(502, "failed", "a bad answer from the leader").answer(),
                Err(e) => {
                    last = refuse(
                        503,
                        "no_leader",
                        format!("the leader (node {leader}) did not answer: {e}"),
                    )
                }
            }
        }
        last.answer()
    }

    /// A membership request on this node, which must lead.
    pub(crate) async fn admin_here(&self, req: &str) -> (u16, String) {
        if !self.is_leader() {
            return refuse(503, "not_leader", format!("node {} does not lead", self.id)).answer();
        }
        let (op, q) = parse_req(req);
        let r = match op {
            "members" => Ok(self.view()),
            "add" => self.add(&q, false).await,
            "join" => self.add(&q, true).await,
            "remove" => self.remove(&q).await,
            "transfer" => self.transfer(&q).await,
            "can-stop" => self.can_stop(&q).await,
            _ => Err(refuse(404, "unknown_request", format!("unknown request {op:?}"))),
        };
        match r {
            Ok(v) => (200, format!("{v}\n")),
            Err(e) => e.answer(),
        }
    }

    /// The membership as the leader sees it.
    fn view(&self) -> Value {
        let m = self.metrics();
        let sm = &m.membership_config;
        let mem = sm.membership();
        let version = version_of(&m);
        let committed =
            sm.log_id().is_none_or(|l| m.last_applied.is_some_and(|a| a.index >= l.index));
        let configs: Vec<Vec<u64>> =
            mem.get_joint_config().iter().map(|c| c.iter().copied().collect()).collect();
        let last = m.last_log_index;
        let node = |id: u64| -> Value {
            let addr = mem.get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
            let (raft, client) = split_addr(&addr);
            let client = client.or_else(|| self.members.get(&id).map(|p| p.client_port));
            let matched = if id == self.id {
                last
            } else {
                m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten()).map(|l| l.index)
            };
            let lag = match (last, matched) {
                (Some(l), Some(x)) => Some(l.saturating_sub(x)),
                (Some(l), None) => Some(l + 1),
                (None, _) => Some(0),
            };
            json!({"id": id, "raft": raft, "client_port": client, "matched": matched, "lag": lag})
        };
        let voters: Vec<Value> = mem.voter_ids().map(node).collect();
        let learners: Vec<Value> = mem.learner_ids().map(node).collect();
        let in_flight = lock(&self.mstate.in_flight).clone().or_else(|| {
            if configs.len() > 1 {
                Some("a joint configuration: a voter is being added or removed".to_string())
            } else if !committed {
                Some(format!("the membership entry at index {version} is not committed yet"))
            } else {
                None
            }
        });
        json!({
            "version": version,
            "membership_log_id": sm.log_id().map(|l| format!("{}-{}", l.leader_id.term, l.index)),
            "committed": committed,
            "leader": m.current_leader,
            "term": m.current_term,
            "voters": voters,
            "learners": learners,
            "configs": configs,
            "change_in_flight": in_flight,
        })
    }

    /// Refuses a change decided against another version than the current one, or
    /// while a membership entry is not settled.
    fn check_version(&self, expected: u64) -> Result<(), Refusal> {
        let m = self.metrics();
        let version = version_of(&m);
        if version != expected {
            return Err(Refusal {
                status: 409,
                code: "stale_version",
                msg: format!(
                    "the membership is at version {version}, not {expected}: read it again (keeperkit members) and decide again"
                ),
                version: Some(version),
            });
        }
        let mem = m.membership_config.membership();
        let committed = m.last_applied.is_some_and(|a| a.index >= version);
        if mem.get_joint_config().len() > 1 || !committed {
            return Err(Refusal {
                status: 409,
                code: "change_in_flight",
                msg: format!("the membership entry at index {version} is not settled yet"),
                version: Some(version),
            });
        }
        Ok(())
    }

    fn one_change(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, Refusal> {
        self.changes.try_lock().map_err(|_| {
            let what = lock(&self.mstate.in_flight).clone().unwrap_or_else(|| "a change".into());
            Refusal {
                status: 409,
                code: "change_in_flight",
                msg: format!("one change at a time: {what} is in flight"),
                version: Some(version_of(&self.metrics())),
            }
        })
    }

    /// Adds a node: a learner, brought up to date, then a voter.
    async fn add(&self, q: &BTreeMap<&str, &str>, join: bool) -> Result<Value, Refusal> {
        let id = id_param(q, "id")?;
        let addr = parse_peer(param(q, "addr")?).map_err(bad)?;
        let expected = version_param(q)?;
        let _one = self.one_change()?;
        self.check_version(expected)?;
        let m = self.metrics();
        let mem = m.membership_config.membership();
        if mem.voter_ids().any(|v| v == id) {
            if join {
                // A voter asking to join lost its directory: its rebuild request
                // (which it sends next) makes it a learner and a voter again.
                let mut v = self.view();
                v["done"] = json!("already_voter");
                v["id"] = json!(id);
                return Ok(v);
            }
            return Err(refuse(422, "refused", format!("node {id} is already a voter")));
        }
        let flight = self.mstate.flight(format!("adding node {id}: a learner, catching up"));
        let raft = &self.raft;
        let t = Instant::now();
        let node = BasicNode::new(addr.node_addr());
        match tokio::time::timeout(CATCH_UP_TIMEOUT, raft.add_learner(id, node, true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(refuse(500, "failed", format!("adding node {id} as a learner: {e}")))
            }
            Err(_) => {
                return Err(refuse(
                    504,
                    "timeout",
                    format!(
                        "node {id} did not catch up within {CATCH_UP_TIMEOUT:?}: it stays a learner (is it running at {}?); `keeperkit members remove {id}` takes it out",
                        addr.raft_addr()
                    ),
                ))
            }
        }
        info!("node {id} is a learner, caught up in {:?}", t.elapsed());
        // Its incarnation: its own rebuild request then needs no second rebuild.
        let who = self.peers.call(id, &addr.node_addr(), APP, &[WHO], PROBE_TIMEOUT).await;
        if let Ok(b) = who {
            if let Ok(n) = <[u8; 8]>::try_from(b.as_slice()) {
                let n = u64::from_le_bytes(n);
                if n != 0 {
                    lock(&self.mstate.promoted).insert(id, n);
                }
            }
        }
        flight.set(format!("adding node {id}: becoming a voter"));
        let one: BTreeSet<u64> = [id].into_iter().collect();
        let r = raft
            .change_membership(ChangeMembers::AddVoterIds(one), true)
            .await
            .map_err(|e| refuse(500, "failed", format!("making node {id} a voter: {e}")))?;
        drop(flight);
        info!("node {id} added as a voter at index {} in {:?}", r.log_id.index, t.elapsed());
        let mut v = self.view();
        v["done"] = json!("added");
        v["id"] = json!(id);
        Ok(v)
    }

    /// Removes a member (never the leader).
    async fn remove(&self, q: &BTreeMap<&str, &str>) -> Result<Value, Refusal> {
        let id = id_param(q, "id")?;
        let expected = version_param(q)?;
        let _one = self.one_change()?;
        self.check_version(expected)?;
        if id == self.id {
            return Err(refuse(
                422,
                "refused",
                format!("node {id} leads: move the leadership first (keeperkit members transfer --to ID), then remove it"),
            ));
        }
        let m = self.metrics();
        let mem = m.membership_config.membership();
        let Some(node) = mem.get_node(&id).cloned() else {
            return Err(refuse(404, "not_member", format!("node {id} is not a member")));
        };
        let one: BTreeSet<u64> = [id].into_iter().collect();
        let voter = mem.voter_ids().any(|v| v == id);
        let flight = self.mstate.flight(format!("removing node {id}"));
        let change = if voter {
            if mem.voter_ids().count() <= 1 {
                return Err(refuse(422, "refused", "the last voter cannot be removed"));
            }
            ChangeMembers::RemoveVoters(one)
        } else {
            ChangeMembers::RemoveNodes(one)
        };
        let r = self
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| refuse(500, "failed", format!("removing node {id}: {e}")))?;
        drop(flight);
        lock(&self.mstate.promoted).remove(&id);
        let mut msg = vec![REMOVED];
        msg.extend_from_slice(&r.log_id.index.to_le_bytes());
        let told = self.peers.call(id, &node.addr, APP, &msg, Duration::from_secs(2)).await;
        if let Err(e) = &told {
            warn!("node {id} removed, but it was not told so ({e}); it learns it from the log or when it starts");
        }
        info!("node {id} removed at index {}", r.log_id.index);
        let mut v = self.view();
        v["done"] = json!("removed");
        v["id"] = json!(id);
        v["told"] = json!(told.is_ok());
        Ok(v)
    }

    /// Whether stopping node `id` now would leave a quorum.
    async fn can_stop(&self, q: &BTreeMap<&str, &str>) -> Result<Value, Refusal> {
        let id = id_param(q, "id")?;
        let m = self.metrics();
        let mem = m.membership_config.membership().clone();
        let voters: Vec<u64> = mem.voter_ids().collect();
        let version = version_of(&m);
        if !voters.contains(&id) {
            let what = if mem.get_node(&id).is_some() { "a learner" } else { "not a member" };
            return Ok(json!({
                "id": id, "safe": true, "voter": false, "leader": false,
                "quorum": voters.len() / 2 + 1, "healthy_after": voters.len(),
                "reason": format!("node {id} is {what}: the quorum does not count it"),
                "version": version, "voters": [],
            }));
        }
        let quorum = voters.len() / 2 + 1;
        let last = m.last_log_index.unwrap_or(0);
        let mut rows = Vec::new();
        let mut healthy_after = 0;
        let mut problems = Vec::new();
        for &v in &voters {
            let (reachable, matched) = if v == self.id {
                (true, m.last_log_index)
            } else {
                let addr = mem.get_node(&v).map(|n| n.addr.clone()).unwrap_or_default();
                let ok = self.peers.call(v, &addr, APP, &[PROBE], PROBE_TIMEOUT).await.is_ok();
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&v).copied().flatten())
                    .map(|l| l.index);
                (ok, matched)
            };
            let lag = matched.map_or(last + 1, |x| last.saturating_sub(x));
            let up_to_date = matched.is_some() && lag <= UP_TO_DATE_LAG;
            let healthy = reachable && up_to_date;
            if v != id {
                if healthy {
                    healthy_after += 1;
                } else if !reachable {
                    problems.push(format!("node {v} does not answer"));
                } else {
                    problems.push(format!("node {v} is {lag} entries behind"));
                }
            }
            rows.push(json!({
                "id": v, "leader": v == self.id, "reachable": reachable,
                "matched": matched, "lag": lag, "up_to_date": up_to_date,
            }));
        }
        let safe = healthy_after >= quorum;
        let others = voters.len() - 1;
        let reason = if safe {
            let mut r = format!(
                "{healthy_after} of the {others} other voters are reachable and up to date; a quorum needs {quorum}"
            );
            if id == self.id {
                r.push_str(&format!(
                    "; node {id} leads: `keeperkit members transfer` first avoids an election"
                ));
            }
            r
        } else {
            format!(
                "stopping node {id} leaves {healthy_after} healthy voters of {}, a quorum needs {quorum}: {}",
                voters.len(),
                if problems.is_empty() { "too few voters".to_string() } else { problems.join(", ") }
            )
        };
        Ok(json!({
            "id": id, "safe": safe, "voter": true, "leader": id == self.id,
            "quorum": quorum, "healthy_after": healthy_after, "reason": reason,
            "version": version, "voters": rows,
        }))
    }

    /// Moves the leadership to voter `to` and waits until it leads.
    async fn transfer(&self, q: &BTreeMap<&str, &str>) -> Result<Value, Refusal> {
        let to = id_param(q, "to")?;
        let timeout = match q.get("timeout_ms") {
            Some(t) => Duration::from_millis(
                t.parse().map_err(|_| bad(format!("timeout_ms {t:?} is not a number")))?,
            ),
            None => Duration::from_millis((self.election_ms() * 10).max(10_000)),
        };
        let m = self.metrics();
        if to == self.id {
            return Ok(json!({"leader": to, "term": m.current_term, "moved": false, "took_ms": 0}));
        }
        let mem = m.membership_config.membership().clone();
        if !mem.voter_ids().any(|v| v == to) {
            return Err(refuse(422, "refused", format!("node {to} is not a voter")));
        }
        let addr = mem.get_node(&to).map(|n| n.addr.clone()).unwrap_or_default();
        let _one = self.one_change()?;
        let _flight = self.mstate.flight(format!("moving the leadership to node {to}"));
        if let Err(e) = self.peers.call(to, &addr, APP, &[PROBE], PROBE_TIMEOUT).await {
            return Err(refuse(422, "refused", format!("node {to} does not answer: {e}")));
        }
        let t = Instant::now();
        let _hold = Hold::new(self);
        let election = Duration::from_millis(self.election_ms());
        let mut rx = self.raft.metrics();
        let mut said = String::new();
        loop {
            // The target must hold this node's whole log to win its vote.
            let caught_up = tokio::time::timeout(
                Duration::from_secs(1),
                rx.wait_for(|m| {
                    m.current_leader != Some(self.id)
                        || m.replication.as_ref().is_some_and(|r| {
                            r.get(&to).copied().flatten().map(|l| l.index) == m.last_log_index
                        })
                }),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if !caught_up {
                said = format!("node {to} did not catch up with the log");
            }
            if self.metrics().current_leader == Some(self.id) {
                if let Err(e) = self.peers.call(to, &addr, APP, &[ELECT], PROBE_TIMEOUT * 2).await {
                    said = format!("node {to}: {e}");
                }
            }
            let moved = tokio::time::timeout(
                election * 2,
                rx.wait_for(|m| m.current_leader.is_some_and(|l| l != self.id)),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            let now = self.metrics();
            match now.current_leader {
                Some(l) if l == to => {
                    info!("leadership moved to node {to} in {:?}", t.elapsed());
                    return Ok(json!({
                        "leader": to, "term": now.current_term, "moved": true,
                        "took_ms": u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
                    }));
                }
                Some(l) if l != self.id && moved => {
                    return Err(refuse(
                        500,
                        "failed",
                        format!(
                            "node {l} was elected instead of node {to} (term {})",
                            now.current_term
                        ),
                    ));
                }
                _ => {}
            }
            if t.elapsed() > timeout {
                return Err(refuse(
                    504,
                    "timeout",
                    format!("node {to} did not take the leadership within {timeout:?}: {said}"),
                ));
            }
        }
    }
}

/// While a transfer runs on the leader: no heartbeats, no elections of its own, new
/// proposals held back. Undone when dropped.
struct Hold<'a>(&'a Replica);

impl<'a> Hold<'a> {
    fn new(r: &'a Replica) -> Hold<'a> {
        r.mstate.transferring.store(true, Ordering::SeqCst);
        r.raft.runtime_config().heartbeat(false);
        r.raft.runtime_config().elect(false);
        Hold(r)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let r = self.0;
        r.raft.runtime_config().heartbeat(true);
        if !r.rebuilding() && !r.is_removed() {
            r.raft.runtime_config().elect(true);
        }
        r.mstate.transferring.store(false, Ordering::SeqCst);
    }
}

/// The target's side of a transfer: campaign now, when the leader asks.
pub(super) async fn elect_call(replica: &Replica, from: u64) -> Result<Vec<u8>, String> {
    let m = replica.metrics();
    if m.current_leader != Some(from) {
        return Err(format!("node {from} is not the leader node {} follows", replica.id));
    }
    if replica.rebuilding() || replica.is_removed() {
        return Err(format!("node {} does not vote", replica.id));
    }
    if !m.membership_config.membership().voter_ids().any(|v| v == replica.id) {
        return Err(format!("node {} is not a voter", replica.id));
    }
    replica.raft.trigger().elect().await.map_err(|e| e.to_string())?;
    Ok(Vec::new())
}

/// A removed node's side: the leader says this node is no member any more.
pub(super) fn removed_call(replica: &Replica, from: u64) -> Result<Vec<u8>, String> {
    let m = replica.metrics();
    if m.current_leader != Some(from) {
        return Err(format!("node {from} is not the leader node {} follows", replica.id));
    }
    replica.mark_removed(&format!("removed by node {from} (leader in term {})", m.current_term));
    Ok(Vec::new())
}

impl Replica {
    /// This node is no member any more: it stops voting and campaigning, refuses
    /// writes, and records it in its data directory.
    fn mark_removed(&self, why: &str) {
        if self.mstate.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.ident.no_vote.store(true, Ordering::SeqCst);
        self.raft.runtime_config().elect(false);
        let p = self.dir.join(REMOVED_FILE);
        let line = format!("{why}, cluster {}\n", self.cluster().unwrap_or_default());
        let written = std::fs::write(&p, line)
            .and_then(|_| std::fs::File::open(&p)?.sync_all())
            .and_then(|_| std::fs::File::open(&self.dir)?.sync_all());
        if let Err(e) = written {
            error!("{}: {e}", p.display());
        }
        error!(
            "node {} was {why}: it serves no writes and never campaigns; stop it (its directory is kept; to add this machine again, empty the directory and start it with --join)",
            self.id
        );
    }
}

/// Why a data directory does not start: its node was removed (`None`: it was not).
pub(super) fn removed_marker(dir: &std::path::Path) -> Option<String> {
    let p = dir.join(REMOVED_FILE);
    let text = std::fs::read_to_string(&p).ok()?;
    Some(format!(
        "{}: this node was {}; it does not start on this directory again. To add this machine back: empty the directory and start it with --join HOST:HTTP_PORT",
        dir.display(),
        text.trim()
    ))
}

/// Marks this node removed once its applied membership no longer names it (the
/// leader's word may not have reached it).
pub(super) async fn watch_removal(replica: Arc<Replica>) {
    let mut rx = replica.raft.metrics();
    loop {
        let gone = {
            let m = rx.borrow_and_update();
            let sm = &m.membership_config;
            let settled =
                sm.log_id().is_some_and(|l| m.last_applied.is_some_and(|a| a.index >= l.index));
            settled
                && !replica.rebuilding()
                && !replica.is_removed()
                && sm.membership().get_node(&replica.id).is_none()
        };
        if gone {
            replica.mark_removed("removed from the membership (its applied log says so)");
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Marks this node removed once a peer refused its vote request because its committed
/// membership does not name this node (see `keeperkit_raft::net::NOT_MEMBER`): the
/// node was removed while it was down, and its log, which never received the change,
/// still names it. It stops campaigning at once (no more rising terms).
pub(super) async fn watch_refusals(replica: Arc<Replica>) {
    let mut rx = replica.ident.not_member.subscribe();
    let why = match rx.wait_for(Option::is_some).await {
        Ok(w) => w.clone().unwrap_or_default(),
        Err(_) => return,
    };
    if replica.is_removed() || replica.rebuilding() {
        return;
    }
    replica.mark_removed(&format!("removed from the membership while it was down ({why})"));
}

/// `--join`: asks the cluster whose member answers HTTP at `at` to add this node,
/// until it has (the node then finishes as a rebuilt node does, see [`super::rejoin`]).
pub(super) async fn join(replica: Arc<Replica>, at: String) {
    let me = replica.id;
    let Some(addr) = replica.members.get(&me).cloned() else { return };
    let spec = format!("{}:{}:{}", addr.host, addr.raft_port, addr.client_port);
    let mut said = Instant::now() - Duration::from_secs(60);
    loop {
        if replica.raft.metrics().borrow().running_state.is_err() {
            return;
        }
        let a = at.clone();
        let members = tokio::task::spawn_blocking(move || {
            crate::http::call(&a, "GET", "/members", Duration::from_secs(10))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let version = members.as_ref().ok().and_then(|(status, body)| {
            let v: Value = serde_json::from_str(body).ok()?;
            (*status == 200).then(|| v["version"].as_u64()).flatten()
        });
        let outcome = match (version, &members) {
            (Some(v), _) => {
                let a = at.clone();
                let path = format!("/members/join?id={me}&addr={spec}&version={v}");
                tokio::task::spawn_blocking(move || {
                    crate::http::call(&a, "POST", &path, ADMIN_TIMEOUT)
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            }
            (None, Ok((s, b))) => Err(format!("{at}: {s} {}", b.trim())),
            (None, Err(e)) => Err(format!("{at}: {e}")),
        };
        match outcome {
            Ok((200, _)) => {
                info!("the cluster at {at} added node {me}");
                return;
            }
            Ok((status, body)) if status == 409 || status == 503 => {
                info!("joining through {at}: {} (trying again)", body.trim());
            }
            Ok((status, body)) => {
                if said.elapsed() > Duration::from_secs(5) {
                    error!("joining through {at}: {status} {}", body.trim());
                    said = Instant::now();
                }
            }
            Err(e) => {
                if said.elapsed() > Duration::from_secs(5) {
                    warn!("joining through {at}: {e} (trying again)");
                    said = Instant::now();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        let (op, q) = parse_req("add?id=4&addr=127.0.0.1:1:2&version=12");
        assert_eq!(op, "add");
        assert_eq!(id_param(&q, "id").unwrap(), 4);
        assert_eq!(version_param(&q).unwrap(), 12);
        assert_eq!(param(&q, "addr").unwrap(), "127.0.0.1:1:2");
        assert_eq!(id_param(&q, "to").unwrap_err().code, "bad_request");
        let (op, q) = parse_req("members");
        assert_eq!(op, "members");
        assert!(q.is_empty());
        let (_, q) = parse_req("remove?id=0&version=x");
        assert!(id_param(&q, "id").is_err());
        assert!(version_param(&q).is_err());
        assert_eq!(split_addr("h:1;2"), ("h:1", Some(2)));
        assert_eq!(split_addr("h:1"), ("h:1", None));
    }

    #[test]
    fn refusals_are_json_with_a_code() {
        let r =
            Refusal { status: 409, code: "stale_version", msg: "x \"y\"".into(), version: Some(7) };
        let (s, body) = r.answer();
        assert_eq!(s, 409);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "stale_version");
        assert_eq!(v["version"], 7);
        assert_eq!(v["error"], "x \"y\"");
    }
}
