//! Divergence detection while serving: replicas compare their tree digest at the same
//! applied index.
//!
//! # Samples
//!
//! Every replica's applier records the running digest of the tree clients read (O(1):
//! the tree keeps ZooKeeper's AdHash up to date as it applies) right after it applied
//! an entry whose Raft index is a multiple of [`SAMPLE_EVERY`]. The sample points are
//! fixed by the index alone, so every replica samples the same points without any
//! message from the leader, and the applier never waits for anything: recording a
//! sample is a push onto a bounded ring ([`KEEP`] samples) under a mutex no I/O holds.
//! A snapshot installed from the leader replaces the tree: the ring starts again.
//!
//! # Comparison
//!
//! Apart from the apply path, a task asks every other member for its samples (an
//! application call on the Raft connection, [`period`] apart) and compares them with
//! its own at the indexes both hold. A replica lagging behind simply has no sample yet
//! at the newest indexes; they are compared once it has (the ring covers
//! `KEEP * SAMPLE_EVERY` entries of lag).
//!
//! At an index where the digests differ, the voters decide: the digest a majority of
//! the voters holds there is the right one. A replica whose digest differs from it has
//! **diverged**: it logs an error with the index and both digests, `/ready` is false,
//! `/status` and `mntr` (`zk_digest_diverged`, `zk_digest_mismatches`) say so, and it
//! stays so until it is restarted (a replica rebuilt from the leader's snapshot starts
//! from the right tree). A replica that holds the majority's digest logs which peer
//! diverged and stays ready. When every voter has reported the index and no digest has
//! a majority, nobody can tell who is right: every replica that sees the difference
//! counts itself diverged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keeperkit_raft::net::{Reader, Writer, APP};
use serde_json::{json, Value};
use tracing::{error, warn};

use super::{Replica, DIGESTS};

/// A sample is taken at every Raft index that is a multiple of this.
pub(crate) const SAMPLE_EVERY: u64 = 32;

/// How many samples a replica keeps (and answers with).
pub(crate) const KEEP: usize = 512;

/// How long a peer may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a replica compares: five heartbeats, between 200 ms and 2 s.
pub(crate) fn period(heartbeat_ms: u64) -> Duration {
    Duration::from_millis(heartbeat_ms.saturating_mul(5))
        .clamp(Duration::from_millis(200), Duration::from_millis(2000))
}

/// This replica's samples and what comparing them found.
#[derive(Default)]
pub(crate) struct Digests {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (Raft index, digest), ascending by index.
    samples: VecDeque<(u64, u64)>,
    /// Peers' digests at indexes this replica holds a sample of.
    seen: BTreeMap<u64, BTreeMap<u64, u64>>,
    /// Indexes whose comparison is over (every member agreed, or it was decided).
    done: BTreeSet<u64>,
    /// Indexes compared with every other member, all agreeing.
    checks: u64,
    /// Indexes where this replica's digest differed from a peer's.
    mismatches: u64,
    /// Why this replica diverged: the first index, its digest and the right one.
    diverged: Option<(u64, String)>,
    /// Peers found diverged: the first index each diverged at.
    peers_diverged: BTreeMap<u64, u64>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Digests {
    /// The applier applied the entry at `index` and the tree's digest is `digest`.
    pub(crate) fn record(&self, index: u64, digest: u64) {
        if index == 0 || !index.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let mut g = lock(&self.inner);
        // Indexes only grow between resets; a repeated or older index means the tree
        // started again from an older point: what was sampled after it is replaced.
        while g.samples.back().is_some_and(|(i, _)| *i >= index) {
            g.samples.pop_back();
        }
        g.samples.push_back((index, digest));
        while g.samples.len() > KEEP {
            if let Some((old, _)) = g.samples.pop_front() {
                g.seen.remove(&old);
                g.done.remove(&old);
            }
        }
    }

    /// A snapshot replaced the tree: the samples start again.
    pub(crate) fn reset(&self) {
        let mut g = lock(&self.inner);
        g.samples.clear();
        g.seen.clear();
        g.done.clear();
    }

    /// The samples at or after `from`.
    fn since(&self, from: u64) -> Vec<(u64, u64)> {
        lock(&self.inner).samples.iter().copied().filter(|(i, _)| *i >= from).collect()
    }

    /// Why this replica diverged, when it has.
    pub(crate) fn diverged(&self) -> Option<(u64, String)> {
        lock(&self.inner).diverged.clone()
    }

    /// `(checks, mismatches, diverged)` for `mntr`.
    pub(crate) fn counts(&self) -> (u64, u64, bool) {
        let g = lock(&self.inner);
        (g.checks, g.mismatches, g.diverged.is_some())
    }

    /// `/status`'s `digest` object.
    pub(crate) fn status(&self) -> Value {
        let g = lock(&self.inner);
        let last =
            g.samples.back().map(|(i, d)| json!({"index": i, "digest": format!("{d:016x}")}));
        let peers: Vec<Value> =
            g.peers_diverged.iter().map(|(p, i)| json!({"id": p, "index": i})).collect();
        json!({
            "sample_every": SAMPLE_EVERY,
            "last_sample": last,
            "checks": g.checks,
            "mismatches": g.mismatches,
            "diverged": g.diverged.is_some(),
            "diverged_at": g.diverged.as_ref().map(|(i, _)| i),
            "reason": g.diverged.as_ref().map(|(_, why)| why),
            "peers_diverged": peers,
        })
    }

    /// Compares what the peers answered (`node → samples`) with this replica's own
    /// samples; `voters` are the voting members, `members` every member but this one.
    fn compare(
        &self,
        me: u64,
        voters: &BTreeSet<u64>,
        members: &BTreeSet<u64>,
        answers: BTreeMap<u64, Vec<(u64, u64)>>,
    ) {
        let mut g = lock(&self.inner);
        let mine: BTreeMap<u64, u64> = g.samples.iter().copied().collect();
        for (node, samples) in answers {
            for (i, d) in samples {
                if mine.contains_key(&i) && !g.done.contains(&i) {
                    g.seen.entry(i).or_default().insert(node, d);
                }
            }
        }
        let majority = voters.len() / 2 + 1;
        let open: Vec<u64> = g.seen.keys().copied().filter(|i| !g.done.contains(i)).collect();
        for i in open {
            let Some(&my) = mine.get(&i) else { continue };
            let peers = g.seen.get(&i).cloned().unwrap_or_default();
            let all_reported = members.iter().all(|m| peers.contains_key(m));
            if peers.values().all(|d| *d == my) {
                if all_reported {
                    g.checks += 1;
                    g.done.insert(i);
                }
                continue;
            }
            // The digests differ at index i: the voters decide.
            let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
            if voters.contains(&me) {
                *votes.entry(my).or_default() += 1;
            }
            for (p, d) in &peers {
                if voters.contains(p) {
                    *votes.entry(*d).or_default() += 1;
                }
            }
            let right = votes.iter().find(|(_, n)| **n >= majority).map(|(d, _)| *d);
            let voters_reported = voters.iter().all(|v| *v == me || peers.contains_key(v));
            match right {
                Some(r) if r == my => {
                    for (p, d) in &peers {
                        if *d != r && !g.peers_diverged.contains_key(p) {
                            warn!(
                                "node {p} diverged: its tree digest at index {i} is {d:016x}, a majority of the voters holds {r:016x}"
                            );
                            g.peers_diverged.insert(*p, i);
                        }
                    }
                    g.mismatches += 1;
                    g.done.insert(i);
                }
                Some(r) => {
                    let why = format!(
                        "tree digest {my:016x} at index {i} differs from {r:016x}, which a majority of the voters holds"
                    );
                    g.mismatches += 1;
                    g.done.insert(i);
                    if g.diverged.is_none() {
                        error!("this replica diverged: {why}; it is not ready until it is rebuilt (empty its data directory and restart it: the leader rebuilds it)");
                        g.diverged = Some((i, why));
                    }
                }
                None if voters_reported => {
                    let others: Vec<String> = peers
                        .iter()
                        .filter(|(_, d)| **d != my)
                        .map(|(p, d)| format!("node {p} holds {d:016x}"))
                        .collect();
                    let why = format!(
                        "tree digest {my:016x} at index {i} differs ({}) and no digest has a majority of the voters",
                        others.join(", ")
                    );
                    g.mismatches += 1;
                    g.done.insert(i);
                    if g.diverged.is_none() {
                        error!("replicas diverged: {why}; this replica is not ready");
                        g.diverged = Some((i, why));
                    }
                }
                // Not every voter has this index yet: wait for their samples.
                None => {}
            }
        }
    }
}

/// Answers a peer's request for samples: body `from` (`u64`), answer a count (`u32`)
/// and `(index, digest)` pairs (`u64` each).
pub(super) fn answer(replica: &Replica, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(body);
    let from = r.u64().map_err(|e| e.0)?;
    r.end().map_err(|e| e.0)?;
    let samples = replica.digests.since(from);
    Ok(encode_samples(&samples))
}

fn encode_samples(samples: &[(u64, u64)]) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(&u32::try_from(samples.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (i, d) in samples {
        w.u64(*i);
        w.u64(*d);
    }
    w.0
}

fn decode_samples(b: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let mut r = Reader::new(b);
    let n = r.count(16).map_err(|e| e.0)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((r.u64().map_err(|e| e.0)?, r.u64().map_err(|e| e.0)?));
    }
    r.end().map_err(|e| e.0)?;
    Ok(out)
}

/// Compares this replica's samples with every other member's, every `period`.
pub(super) async fn compare_loop(replica: Arc<Replica>, period: Duration) {
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let m = replica.metrics();
        if m.running_state.is_err() {
            return;
        }
        if replica.rebuilding() || replica.is_removed() {
            continue;
        }
        let Some(&(from, _)) = lock(&replica.digests.inner).samples.front() else { continue };
        let mem = m.membership_config.membership();
        let voters: BTreeSet<u64> = mem.voter_ids().collect();
        let nodes: Vec<(u64, String)> = mem
            .nodes()
            .filter(|(id, _)| **id != replica.id)
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let members: BTreeSet<u64> = nodes.iter().map(|(id, _)| *id).collect();
        let mut msg = vec![DIGESTS];
        msg.extend_from_slice(&from.to_le_bytes());
        let asks = nodes.into_iter().map(|(id, addr)| {
            let (replica, msg) = (replica.clone(), msg.clone());
            async move {
                let r = replica.peers.call(id, &addr, APP, &msg, ASK_TIMEOUT).await;
                (id, r)
            }
        });
        let mut answers = BTreeMap::new();
        for (id, r) in futures_join(asks).await {
            match r.map_err(|e| e.to_string()).and_then(|b| decode_samples(&b)) {
                Ok(s) => {
                    answers.insert(id, s);
                }
                Err(e) => tracing::debug!("digest samples of node {id}: {e}"),
            }
        }
        replica.digests.compare(replica.id, &voters, &members, answers);
    }
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn samples_are_taken_at_fixed_indexes_and_bounded() {
        let d = Digests::default();
        for i in 1..=(SAMPLE_EVERY * (KEEP as u64 + 10)) {
            d.record(i, i * 7);
        }
        let s = d.since(0);
        assert_eq!(s.len(), KEEP);
        assert!(s.iter().all(|(i, v)| i % SAMPLE_EVERY == 0 && *v == i * 7));
        assert_eq!(s.last().unwrap().0, SAMPLE_EVERY * (KEEP as u64 + 10));
        // The tree started again from an older point: later samples are replaced.
        d.record(SAMPLE_EVERY * 20, 1);
        assert_eq!(d.since(0).last().copied(), Some((SAMPLE_EVERY * 20, 1)));
        let b = encode_samples(&d.since(0));
        assert_eq!(decode_samples(&b).unwrap(), d.since(0));
        for cut in 0..b.len().min(64) {
            assert!(decode_samples(&b[..cut]).is_err());
        }
    }

    #[test]
    fn agreement_counts_checks_and_a_minority_digest_is_found() {
        let voters = set(&[1, 2, 3]);
        let e = SAMPLE_EVERY;
        // Node 1's view: node 2 agrees, node 3 differs at the second index.
        let d = Digests::default();
        d.record(e, 10);
        d.record(2 * e, 20);
        let answers: BTreeMap<u64, Vec<(u64, u64)>> =
            [(2, vec![(e, 10), (2 * e, 20)]), (3, vec![(e, 10), (2 * e, 99)])].into();
        d.compare(1, &voters, &set(&[2, 3]), answers);
        assert_eq!(d.counts(), (1, 1, false));
        assert_eq!(d.status()["peers_diverged"][0]["id"], 3);
        // Node 3's view: it is the one that diverged.
        let d3 = Digests::default();
        d3.record(e, 10);
        d3.record(2 * e, 99);
        let answers: BTreeMap<u64, Vec<(u64, u64)>> =
            [(1, vec![(e, 10), (2 * e, 20)]), (2, vec![(e, 10), (2 * e, 20)])].into();
        d3.compare(3, &voters, &set(&[1, 2]), answers);
        assert_eq!(d3.counts(), (1, 1, true));
        assert_eq!(d3.diverged().unwrap().0, 2 * e);
    }

    #[test]
    fn a_lagging_peer_is_waited_for_and_two_against_none_decide_nothing_early() {
        let voters = set(&[1, 2, 3]);
        let e = SAMPLE_EVERY;
        let d = Digests::default();
        d.record(e, 10);
        // Node 2 differs, node 3 has not reached the index: no majority yet.
        let answers: BTreeMap<u64, Vec<(u64, u64)>> = [(2, vec![(e, 11)]), (3, vec![])].into();
        d.compare(1, &voters, &set(&[2, 3]), answers);
        assert_eq!(d.counts(), (0, 0, false));
        // Node 3 reaches it and agrees with node 1: node 2 is the one.
        let answers: BTreeMap<u64, Vec<(u64, u64)>> = [(3, vec![(e, 10)])].into();
        d.compare(1, &voters, &set(&[2, 3]), answers);
        assert_eq!(d.counts(), (0, 1, false));
        // Three different digests: nobody is right, every one is not ready.
        let d = Digests::default();
        d.record(e, 10);
        let answers: BTreeMap<u64, Vec<(u64, u64)>> =
            [(2, vec![(e, 11)]), (3, vec![(e, 12)])].into();
        d.compare(1, &voters, &set(&[2, 3]), answers);
        assert_eq!(d.counts(), (0, 1, true));
    }
}
