//! The four-letter words, answered on the client port as ZooKeeper 3.8 prints them
//! (and ClickHouse Keeper's `lgif` and `csnp`). A word must be in
//! `4lw.commands.whitelist`; the connection closes after the answer.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use keeperkit_storage::traits::{LogStore, SnapshotStore, StateMachine};

use crate::server::Shared;

/// Every word known.
pub const WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "isro",
    "crst", "srst", "lgif", "csnp",
];

/// The version `srvr`, `stat`, `mntr` (`zk_version`) and `envi` report, in ZooKeeper's
/// shape `MAJOR.MINOR.PATCH-<build>`: tools (kazoo's `server_version`, exporters, zkCli
/// users) read the `X.Y.Z` prefix to know which protocol and features to expect, so it
/// names the ZooKeeper release whose behaviour this server reproduces and is
/// differentially tested against (3.8.0); where ZooKeeper puts its git hash comes
/// `keeperkit-` and keeperkit's own version.
pub const VERSION: &str = concat!("3.8.0-keeperkit-", env!("CARGO_PKG_VERSION"));

/// Whether `w` is a four-letter word.
pub fn is_word(w: &str) -> bool {
    WORDS.contains(&w)
}

fn latency(shared: &Shared) -> (f64, u64, u64) {
    let s = &shared.stats;
    let n = s.latency_count.load(Ordering::Relaxed);
    let sum = s.latency_sum_us.load(Ordering::Relaxed);
    let avg = if n == 0 { 0.0 } else { sum as f64 / n as f64 / 1000.0 };
    (
        avg,
        s.latency_min_us.load(Ordering::Relaxed) / 1000,
        s.latency_max_us.load(Ordering::Relaxed) / 1000,
    )
}

/// The numbers `mntr` and `/metrics` report, ZooKeeper's names.
pub(crate) fn metrics(shared: &Shared) -> Vec<(&'static str, String)> {
    let (avg, min, max) = latency(shared);
    let (nodes, ephemerals, data_size, zxid) = {
        let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
        let mut eph = 0usize;
        let mut size = 0usize;
        t.for_each_preorder(|p, n| {
            size += p.len() + n.data().map_or(0, <[u8]>::len);
            if n.kind() == keeperkit_model::NodeKind::Ephemeral {
                eph += 1;
            }
        });
        (t.node_count(), eph, size, t.last_processed_zxid().0)
    };
    let (watches, paths) = shared.watches.lock().unwrap_or_else(|e| e.into_inner()).counts();
    let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    let outstanding = outstanding(shared);
    let s = &shared.stats;
    let mut v = vec![
        ("zk_version", VERSION.to_string()),
        ("zk_server_state", server_state(shared).into()),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        ("zk_packets_received", s.packets_received.load(Ordering::Relaxed).to_string()),
        ("zk_packets_sent", s.packets_sent.load(Ordering::Relaxed).to_string()),
        ("zk_num_alive_connections", conns.len().to_string()),
        ("zk_outstanding_requests", outstanding.to_string()),
        ("zk_znode_count", nodes.to_string()),
        ("zk_watch_count", watches.to_string()),
        ("zk_watched_paths", paths.to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", data_size.to_string()),
        ("zk_global_sessions", shared.session_count().to_string()),
        ("zk_last_zxid", format!("0x{zxid:x}")),
        ("zk_fsync_count", s.syncs.load(Ordering::Relaxed).to_string()),
        ("zk_txn_count", s.txns.load(Ordering::Relaxed).to_string()),
        ("zk_snapshot_count", s.snapshots.load(Ordering::Relaxed).to_string()),
        ("zk_uptime", shared.started.elapsed().as_millis().to_string()),
    ];
    // As ZooKeeper's leader reports them: voters besides itself, and those holding
    // every entry it has.
    if let Some((followers, synced)) = shared.replica.as_ref().and_then(|r| r.followers()) {
        v.push(("zk_followers", followers.to_string()));
        v.push(("zk_synced_followers", synced.to_string()));
    }
    v
}

/// `standalone`, or a replica's `leader` / `follower` / `observer` (a learner) /
/// `looking` (an election).
fn server_state(shared: &Shared) -> &'static str {
    shared.replica.as_ref().map_or("standalone", |r| r.state_name())
}

/// Requests in flight (`globalOutstandingLimit` permits taken).
fn outstanding(shared: &Shared) -> usize {
    let limit = shared.cfg.global_outstanding;
    limit - shared.global.available_permits().min(limit)
}

fn srvr(shared: &Shared, with_clients: bool) -> String {
    let (avg, min, max) = latency(shared);
    let mut o = format!("Zookeeper version: {VERSION}, built on keeperkit\n");
    let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    if with_clients {
        o.push_str("Clients:\n");
        for c in conns.values() {
            let _ = writeln!(
                o,
                " /{}[1](queued={},recved={},sent={})",
                c.addr,
                shared.cfg.max_outstanding
                    - c.outstanding.available_permits().min(shared.cfg.max_outstanding),
                c.received.load(Ordering::Relaxed),
                c.sent.load(Ordering::Relaxed)
            );
        }
        o.push('\n');
    }
    let s = &shared.stats;
    let (nodes, zxid) = {
        let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
        (t.node_count(), t.last_processed_zxid().0)
    };
    let _ = write!(
        o,
        "Latency min/avg/max: {min}/{avg:.4}/{max}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{zxid:x}\nMode: {}\nNode count: {nodes}\n",
        s.packets_received.load(Ordering::Relaxed),
        s.packets_sent.load(Ordering::Relaxed),
        conns.len(),
        outstanding(shared),
        server_state(shared),
    );
    o
}

/// The answer to word `w` (the connection closes after it).
pub(crate) fn answer(shared: &Shared, w: &str) -> String {
    if !shared.cfg.allows(w) {
        return format!("{w} is not executed because it is not in the whitelist.\n");
    }
    match w {
        // A replica answers only while it is part of a working quorum (it sees a
        // leader that hears from a majority); otherwise nothing, as a ZooKeeper server
        // that is not serving.
        "ruok" => match &shared.replica {
            Some(r) if !r.ready().0 => String::new(),
            _ => "imok".into(),
        },
        "isro" => "rw".into(),
        "srvr" => srvr(shared, false),
        "stat" => srvr(shared, true),
        "mntr" => metrics(shared).into_iter().map(|(k, v)| format!("{k}\t{v}\n")).collect(),
        "conf" => {
            let c = &shared.cfg;
            let (min, max) = c.session_bounds();
            format!(
                "clientPort={}\nsecureClientPort=-1\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={min}\nmaxSessionTimeout={max}\nclientPortListenBacklog=-1\nserverId=0\njute.maxbuffer={}\nsnapCount={}\n",
                c.listen.port(),
                shared.engine.dir().display(),
                shared.engine.dir().display(),
                c.tick_time_ms,
                c.max_client_cnxns,
                c.max_frame,
                c.snap_count
            )
        }
        "cons" => {
            let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            let mut o = String::new();
            let mut v: Vec<_> = conns.iter().collect();
            v.sort_by_key(|(id, _)| **id);
            for (_, c) in v {
                let _ = writeln!(
                    o,
                    " /{}[1](queued=0,recved={},sent={},sid=0x{:x})",
                    c.addr,
                    c.received.load(Ordering::Relaxed),
                    c.sent.load(Ordering::Relaxed),
                    c.session.map_or(0, |s| s.0)
                );
            }
            o.push('\n');
            o
        }
        "envi" => format!(
            "Environment:\nzookeeper.version={VERSION}\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={}\n",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
        ),
        "wchs" => {
            let w = shared.watches.lock().unwrap_or_else(|e| e.into_inner());
            let (n, paths) = w.counts();
            format!("{} connections watching {paths} paths\nTotal watches:{n}\n", w.by_connection().len())
        }
        "wchc" => {
            let w = shared.watches.lock().unwrap_or_else(|e| e.into_inner());
            let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            let mut o = String::new();
            for (c, paths) in w.by_connection() {
                let sid = conns.get(&c).and_then(|ci| ci.session).map_or(0, |s| s.0);
                let _ = writeln!(o, "0x{sid:x}");
                for p in paths {
                    let _ = writeln!(o, "\t{p}");
                }
            }
            o
        }
        "wchp" => {
            let w = shared.watches.lock().unwrap_or_else(|e| e.into_inner());
            let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            let mut o = String::new();
            for (p, cs) in w.by_path() {
                let _ = writeln!(o, "{p}");
                for c in cs {
                    let sid = conns.get(&c).and_then(|ci| ci.session).map_or(0, |s| s.0);
                    let _ = writeln!(o, "\t0x{sid:x}");
                }
            }
            o
        }
        "dump" => {
            let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
            let sessions = t.sessions();
            let mut o = format!("SessionTracker dump:\nGlobal Sessions({}):\n", sessions.len());
            for s in &sessions {
                let _ = writeln!(o, "0x{:x}\t{}ms", s.id.0, s.timeout_ms);
            }
            let with: Vec<_> = sessions.iter().filter(|s| s.ephemerals > 0).collect();
            let _ = writeln!(o, "ephemeral nodes dump:\nSessions with Ephemerals ({}):", with.len());
            for s in with {
                let _ = writeln!(o, "0x{:x}:", s.id.0);
                for p in t.ephemerals(s.id) {
                    let _ = writeln!(o, "\t{p}");
                }
            }
            o
        }
        "crst" => {
            for c in shared.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
                c.received.store(0, Ordering::Relaxed);
                c.sent.store(0, Ordering::Relaxed);
            }
            "Connection stats reset.\n".into()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".into()
        }
        "lgif" => {
            let e = &shared.engine;
            let first = e.first_index().unwrap_or(0);
            let last = e.last_index().unwrap_or(0);
            let applied = e.applied();
            let snap = e.list_snapshots().ok().and_then(|v| v.last().map(|s| s.position.index)).unwrap_or(0);
            format!(
                "first_log_idx\t{first}\nfirst_log_term\t{}\nlast_log_idx\t{last}\nlast_log_term\t{}\nlast_committed_log_idx\t{}\nleader_committed_log_idx\t{}\ntarget_committed_log_idx\t{}\nlast_snapshot_idx\t{snap}\n",
                applied.term, applied.term, applied.index, applied.index, applied.index
            )
        }
        "csnp" => {
            drop(shared.snapshot_now());
            format!("{}\n", shared.engine.applied().index)
        }
        _ => format!("{w} is not a known command\n"),
    }
}
