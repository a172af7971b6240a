//! The nemesis: a seeded schedule of faults, one at a time, each held for a while and
//! then healed, with quiet time between them.
//!
//! The schedule (times, kinds, hold times, whom to pick) comes from the seed alone; which
//! node is "the leader" or "a follower" is read from the nodes' `/status` when the
//! fault starts.

use std::time::{Duration, Instant};

use keeperkit_vfs::SplitMix64;

use crate::cluster::{self, Cluster, NodeId, NODES};
use crate::proxy::Proxies;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a node (the leader, or another), restart it after the hold.
    Kill {
        /// The leader rather than a follower.
        leader: bool,
    },
    /// SIGSTOP a node, SIGCONT after the hold.
    Pause {
        /// The leader rather than a follower.
        leader: bool,
    },
    /// Cut one node off from the other two (both directions).
    Isolate {
        /// The leader rather than a follower.
        leader: bool,
    },
    /// Two nodes cannot talk; the third (the bridge) talks to both.
    Bridge,
    /// SIGKILL all three at once (a power loss), restart them after the hold.
    KillAll,
    /// SIGKILL a follower, damage its newest snapshot (or log segment), restart it: it
    /// must refuse to start (then its directory is wiped and it is rebuilt from the
    /// leader) or start and serve only right data.
    Damage {
        /// The snapshot rather than the log.
        snapshot: bool,
    },
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// When it starts, from the start of the workload.
    pub at: Duration,
    /// What.
    pub fault: Fault,
    /// How long it is held.
    pub hold: Duration,
    /// Picks among the candidate nodes.
    pub pick: u64,
}

/// The schedule of a run: faults from 3 s in until 4 s before the end.
pub fn schedule(seed: u64, seconds: u64) -> Vec<Planned> {
    let mut r = SplitMix64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xFA17);
    let mut out = Vec::new();
    let mut t = Duration::from_secs(3);
    let end = Duration::from_secs(seconds.saturating_sub(4));
    let mut n = 0u64;
    while t < end {
        let leader = r.below(2) == 0;
        // every fifth fault damages a follower, alternating snapshot and log
        let fault = if n % 5 == 4 {
            Fault::Damage { snapshot: (n / 5).is_multiple_of(2) }
        } else {
            match r.below(9) {
                0 | 1 => Fault::Kill { leader },
                2 | 3 => Fault::Pause { leader },
                4 | 5 => Fault::Isolate { leader },
                6 | 7 => Fault::Bridge,
                _ => Fault::KillAll,
            }
        };
        let hold = Duration::from_millis(1500 + r.below(2500));
        out.push(Planned { at: t, fault, hold, pick: r.next_u64() });
        t += hold + Duration::from_millis(1500 + r.below(2000));
        n += 1;
    }
    out
}

/// What happened when a fault ran.
#[derive(Debug, Clone)]
pub struct Event {
    /// Seconds into the run when it started.
    pub at: f64,
    /// What was done.
    pub what: String,
}

/// A damaged node that refused to start.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The node.
    pub node: NodeId,
    /// Its exit code.
    pub code: Option<i32>,
    /// The last lines of its log.
    pub reason: String,
}

/// What the nemesis did.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Each fault.
    pub events: Vec<Event>,
    /// Damaged nodes that refused to start.
    pub refused: Vec<Refused>,
    /// Damaged nodes that started anyway.
    pub started_damaged: Vec<NodeId>,
    /// Problems of the harness itself (a node that could not be started).
    pub errors: Vec<String>,
}

fn pick_node(c: &Cluster, leader: bool, pick: u64) -> NodeId {
    let l = c.leader(Duration::from_secs(2));
    let up: Vec<NodeId> = NODES.iter().copied().filter(|n| !c.is_down(*n)).collect();
    match (leader, l) {
        (true, Some(l)) => l,
        _ => {
            let others: Vec<NodeId> = up.iter().copied().filter(|n| Some(*n) != l).collect();
            let from = if others.is_empty() { NODES.to_vec() } else { others };
            from[usize::try_from(pick % from.len() as u64).unwrap_or(0)]
        }
    }
}

fn others(n: NodeId) -> Vec<NodeId> {
    NODES.iter().copied().filter(|x| *x != n).collect()
}

/// Runs the schedule until `deadline` (each fault healed before the next; the last
/// one too).
pub fn run(
    c: &Cluster,
    proxies: &Proxies,
    plan: &[Planned],
    t0: Instant,
    deadline: Instant,
) -> Log {
    let mut log = Log::default();
    let sleep_until = |t: Instant| {
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
    };
    for p in plan {
        let start = t0 + p.at;
        if start + p.hold > deadline {
            break;
        }
        sleep_until(start);
        // A node that ended by itself (not killed here) is a crash: report it, bring
        // it back.
        for n in NODES {
            if let Some(code) = c.exited(n) {
                log.errors.push(format!(
                    "node {n} exited by itself (exit code {code:?}) before {:.2} s: {}",
                    t0.elapsed().as_secs_f64(),
                    c.log_tail(n, 3)
                ));
                if let Err(e) = c.start(n) {
                    log.errors.push(format!("restarting node {n}: {e:#}"));
                }
            }
        }
        let at = t0.elapsed().as_secs_f64();
        let end = Instant::now() + p.hold;
        let what = match p.fault {
            Fault::Kill { leader } => {
                let n = pick_node(c, leader, p.pick);
                c.kill(n);
                sleep_until(end);
                if let Err(e) = c.start(n) {
                    log.errors.push(format!("restarting node {n}: {e:#}"));
                }
                format!(
                    "kill -9 node {n}{} for {:.1} s, restart",
                    if leader { " (leader)" } else { "" },
                    p.hold.as_secs_f64()
                )
            }
            Fault::Pause { leader } => {
                let n = pick_node(c, leader, p.pick);
                c.pause(n);
                sleep_until(end);
                c.resume(n);
                format!(
                    "SIGSTOP node {n}{} for {:.1} s, SIGCONT",
                    if leader { " (leader)" } else { "" },
                    p.hold.as_secs_f64()
                )
            }
            Fault::Isolate { leader } => {
                let n = pick_node(c, leader, p.pick);
                proxies.partition(&[vec![n], others(n)]);
                sleep_until(end);
                proxies.heal();
                format!(
                    "isolate node {n}{} for {:.1} s, heal",
                    if leader { " (leader)" } else { "" },
                    p.hold.as_secs_f64()
                )
            }
            Fault::Bridge => {
                let b = NODES[usize::try_from(p.pick % 3).unwrap_or(0)];
                let o = others(b);
                proxies.heal();
                proxies.cut(o[0], o[1]);
                proxies.cut(o[1], o[0]);
                sleep_until(end);
                proxies.heal();
                format!(
                    "bridge through node {b} ({} and {} cut apart) for {:.1} s, heal",
                    o[0],
                    o[1],
                    p.hold.as_secs_f64()
                )
            }
            Fault::KillAll => {
                for n in NODES {
                    c.kill(n);
                }
                sleep_until(end);
                for n in NODES {
                    if let Err(e) = c.start(n) {
                        log.errors.push(format!("restarting node {n}: {e:#}"));
                    }
                }
                format!("kill -9 every node for {:.1} s, restart them", p.hold.as_secs_f64())
            }
            Fault::Damage { snapshot } => {
                let n = pick_node(c, false, p.pick);
                c.kill(n);
                let d = cluster::damage(&c.data_dir(n), snapshot, p.pick.rotate_left(17));
                sleep_until(end);
                let mut what = match &d {
                    Ok(d) => format!(
                        "kill -9 follower node {n}, overwrite {} bytes of {} at {}",
                        d.len,
                        d.file.strip_prefix(&c.dir).unwrap_or(&d.file).display(),
                        d.offset
                    ),
                    Err(e) => format!("kill -9 follower node {n}, nothing damaged ({e:#})"),
                };
                match c.start_and_watch(n, Duration::from_secs(8)) {
                    Err(e) => log.errors.push(format!("restarting node {n}: {e:#}")),
                    Ok(Ok(())) => {
                        what.push_str(": it started");
                        if d.is_ok() {
                            log.started_damaged.push(n);
                        }
                    }
                    Ok(Err(r)) => {
                        what.push_str(&format!(
                            ": it refused to start (exit code {}), wiped and restarted",
                            r.code.map_or("none".to_string(), |c| c.to_string())
                        ));
                        log.refused.push(Refused { node: n, code: r.code, reason: r.reason });
                        let dir = c.data_dir(n);
                        let wiped = std::fs::remove_dir_all(&dir)
                            .and_then(|_| std::fs::create_dir_all(&dir));
                        if let Err(e) = wiped.map_err(anyhow::Error::from).and_then(|_| c.start(n))
                        {
                            log.errors.push(format!("rebuilding node {n}: {e:#}"));
                        }
                    }
                }
                what
            }
        };
        log.events.push(Event { at, what });
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_function_of_the_seed() {
        let a = schedule(7, 90);
        let b = schedule(7, 90);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(format!("{a:?}"), format!("{:?}", schedule(8, 90)));
        assert!(a.len() >= 10, "{}", a.len());
        assert!(a.iter().any(|p| matches!(p.fault, Fault::Damage { .. })));
        let long = schedule(1, 600);
        for f in [Fault::KillAll, Fault::Bridge] {
            assert!(long.iter().any(|p| p.fault == f), "{f:?}");
        }
        assert!(a.windows(2).all(|w| w[0].at + w[0].hold < w[1].at));
        assert!(a.last().is_some_and(|p| p.at < Duration::from_secs(86)));
        assert!(schedule(1, 5).is_empty());
    }
}
