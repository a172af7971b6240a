//! The four-letter words, answered on the client port as ZooKeeper 3.8 prints them
//! (and ClickHouse Keeper's `lgif` and `csnp`). A word must be in
//! `4lw.commands.whitelist`; the connection closes after the answer.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use keeperkit_storage::traits::{LogStore, SnapshotStore, StateMachine};

use crate::server::{ConnInfo, Shared};
use crate::watch::ConnId;

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
    // Learners (being added or rebuilt): ZooKeeper 3.8's learner counts.
    if let Some((learners, synced)) = shared.replica.as_ref().and_then(|r| r.non_voting()) {
        let followers = shared.replica.as_ref().and_then(|r| r.followers()).map_or(0, |f| f.0);
        v.push(("zk_learners", (followers + learners).to_string()));
        v.push(("zk_synced_non_voting_followers", synced.to_string()));
    }
    // Divergence detection: indexes compared with every peer, indexes where a digest
    // differed, and whether this replica is the one that diverged.
    if let Some(r) = shared.replica.as_ref() {
        let (checks, mismatches, diverged) = r.digests.counts();
        v.push(("zk_digest_checks", checks.to_string()));
        v.push(("zk_digest_mismatches", mismatches.to_string()));
        v.push(("zk_digest_diverged", u8::from(diverged).to_string()));
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
/// `me` is the connection asking.
pub(crate) fn answer(shared: &Shared, w: &str, me: ConnId) -> String {
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
        "cons" => cons(shared, me),
        "envi" => envi(),
        "wchs" => {
            let w = shared.watches.lock().unwrap_or_else(|e| e.into_inner());
            let (n, paths) = w.counts();
            format!(
                "{} connections watching {paths} paths\nTotal watches:{n}\n",
                w.by_connection().len()
            )
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
        "dump" => dump(shared),
        "crst" => {
            for c in shared.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
                c.received.store(0, Ordering::Relaxed);
                c.sent.store(0, Ordering::Relaxed);
                crate::server::lock(&c.stats).reset();
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
            let snap = e
                .list_snapshots()
                .ok()
                .and_then(|v| v.last().map(|s| s.position.index))
                .unwrap_or(0);
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

/// One connection as ZooKeeper's `ServerCnxn.dumpConnectionInfo` prints it: address,
/// interest ops (0 for the connection asking, which is not reading while it answers;
/// 1 for the others), queued requests, packets received and sent, and for a
/// connection with a session: its id, the last operation answered, when the
/// connection was established (ms since the epoch), the session timeout, the last
/// cxid and zxid answered, when (ms on the server's monotonic clock), and the last,
/// min, average and max latency in ms.
fn connection_info(o: &mut String, shared: &Shared, c: &ConnInfo, asking: bool, timeout: i32) {
    let queued = shared.cfg.max_outstanding
        - c.outstanding.available_permits().min(shared.cfg.max_outstanding);
    let _ = write!(
        o,
        " /{}[{}](queued={queued},recved={},sent={}",
        c.addr,
        if asking { 0 } else { 1 },
        c.received.load(Ordering::Relaxed),
        c.sent.load(Ordering::Relaxed)
    );
    if let Some(sid) = c.session {
        let st = crate::server::lock(&c.stats);
        let _ = write!(
            o,
            ",sid=0x{:x},lop={},est={},to={timeout}",
            sid.0, st.last_op, st.established_ms
        );
        if st.last_cxid >= 0 {
            let _ = write!(o, ",lcxid=0x{:x}", st.last_cxid);
        }
        let _ = write!(
            o,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            st.last_zxid,
            st.last_response_ms,
            st.last_latency_ms,
            st.min_latency_ms(),
            st.avg_latency_ms(),
            st.max_latency_ms
        );
    }
    o.push(')');
}

/// `cons`: every connection, then an empty line.
fn cons(shared: &Shared, me: ConnId) -> String {
    // The session table is locked before the connections elsewhere: not while they are.
    let timeouts: std::collections::HashMap<i64, i32> = crate::server::lock(&shared.sessions)
        .map
        .iter()
        .map(|(id, s)| (*id, s.timeout_ms))
        .collect();
    let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    let mut o = String::new();
    let mut v: Vec<_> = conns.iter().collect();
    v.sort_by_key(|(id, _)| **id);
    for (id, c) in v {
        let timeout = c.session.and_then(|s| timeouts.get(&s.0)).copied().unwrap_or(0);
        connection_info(&mut o, shared, c, *id == me, timeout);
        o.push('\n');
    }
    o.push('\n');
    o
}

/// `envi`: ZooKeeper's `Environment.list()` where it has an equivalent here. The
/// `java.*` lines (version, vendor, home, class path, library path, tmpdir, compiler)
/// and `os.memory.*` (the JVM heap: free, max, total) describe a JVM; there is none,
/// and no client or tool reads them to decide anything, so they are left out rather
/// than made up. The rest as Java gets it: the host name, `os.name`, `os.arch` in
/// Java's spelling (`amd64` for x86_64), `os.version` (the kernel release),
/// `user.name` and `user.home` of the process's user (its passwd entry), `user.dir`
/// (the working directory).
fn envi() -> String {
    let (user, home) = user_entry();
    let list = [
        ("zookeeper.version", format!("{VERSION}, built on keeperkit")),
        ("host.name", host_name()),
        ("os.name", os_name().to_string()),
        ("os.arch", java_arch(std::env::consts::ARCH).to_string()),
        ("os.version", read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()),
        ("user.name", user),
        ("user.home", home),
        ("user.dir", std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()),
    ];
    let mut o = String::from("Environment:\n");
    for (k, v) in list {
        let _ = writeln!(o, "{k}={v}");
    }
    o
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Java's `os.name`.
fn os_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac OS X",
        "freebsd" => "FreeBSD",
        "windows" => "Windows",
        other => other,
    }
}

/// Java's `os.arch` for Rust's `ARCH`.
pub(crate) fn java_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "x86" => "i386",
        other => other,
    }
}

/// The name and home directory of the process's real user, from its passwd entry (as
/// Java's `getpwuid(getuid())`); `$USER`/`$HOME` when it cannot be read.
fn user_entry() -> (String, String) {
    let uid = read_trimmed("/proc/self/status").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
    });
    let entry = uid.and_then(|uid| {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2] == uid).then(|| (f[0].to_string(), f[5].to_string()))
        })
    });
    entry.unwrap_or_else(|| {
        (std::env::var("USER").unwrap_or_default(), std::env::var("HOME").unwrap_or_default())
    })
}

/// `dump`: ZooKeeper's `DumpCommand`. The sessions grouped by when they expire
/// (`ExpiryQueue.dump`: deadlines rounded up to the next tick, on the server's
/// monotonic clock, printed as dates), the ephemerals of each session, and the
/// connections grouped by when they expire (the session's deadline, rounded up to
/// ZooKeeper's 10 s sessionless-connection interval; a connection without a session
/// expires 10 s after it was accepted). Within a group, ids and connections are in
/// ascending order where ZooKeeper's hash sets have their own order. Dates are UTC.
/// A replica that follows lists the sessions as a ZooKeeper learner does
/// (`Global Sessions(N):`, then `0xID<tab>TIMEOUTms`).
fn dump(shared: &Shared) -> String {
    let now = std::time::Instant::now();
    let wall = crate::server::now_ms();
    // (rounded deadline as ms on the server's clock, what to print)
    let group = |items: Vec<(std::time::Instant, String)>, interval: u64| {
        let mut sets: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        let n = items.len();
        for (deadline, what) in items {
            let t = u64::try_from(deadline.saturating_duration_since(shared.started).as_millis())
                .unwrap_or(u64::MAX);
            let rounded = (t / interval + 1) * interval;
            sets.entry(rounded).or_default().push(what);
        }
        let mut o = format!("Sets ({})/({n}):\n", sets.len());
        let elapsed = u64::try_from(now.duration_since(shared.started).as_millis()).unwrap_or(0);
        for (t, mut v) in sets {
            v.sort();
            let at = wall + i64::try_from(t).unwrap_or(0) - i64::try_from(elapsed).unwrap_or(0);
            let _ = writeln!(o, "{} expire at {}:", v.len(), java_date(at));
            for w in v {
                let _ = writeln!(o, "\t{w}");
            }
        }
        o
    };
    let sessions: Vec<_> = {
        let ss = crate::server::lock(&shared.sessions);
        ss.map.iter().map(|(id, s)| (s.deadline, *id)).collect()
    };
    let mut o = String::from("SessionTracker dump:\n");
    let learner =
        shared.replica.as_ref().is_some_and(|r| matches!(r.state_name(), "follower" | "observer"));
    if learner {
        // A follower does not expire sessions: as ZooKeeper's LearnerSessionTracker, every
        // session of the service in ascending order with its timeout.
        let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
        let mut all = t.sessions();
        all.sort_by_key(|s| s.id.0);
        let _ = writeln!(o, "Global Sessions({}):", all.len());
        for s in all {
            let _ = writeln!(o, "0x{:x}\t{}ms", s.id.0, s.timeout_ms);
        }
    } else {
        o.push_str("Session ");
        let tick = u64::from(shared.cfg.tick_time_ms.max(1));
        let mut by_id: Vec<_> = sessions.iter().map(|(d, id)| (*d, *id)).collect();
        by_id.sort_by_key(|(_, id)| *id);
        o.push_str(&group(by_id.iter().map(|(d, id)| (*d, format!("0x{id:x}"))).collect(), tick));
    }
    {
        let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
        let with: Vec<_> = t.sessions().into_iter().filter(|s| s.ephemerals > 0).collect();
        let _ = writeln!(o, "ephemeral nodes dump:\nSessions with Ephemerals ({}):", with.len());
        for s in with {
            let _ = writeln!(o, "0x{:x}:", s.id.0);
            for p in t.ephemerals(s.id) {
                let _ = writeln!(o, "\t{p}");
            }
        }
    }
    o.push_str("Connections dump:\nConnections ");
    let conns: Vec<_> = {
        let deadlines: std::collections::HashMap<i64, std::time::Instant> =
            sessions.iter().map(|(d, id)| (*id, *d)).collect();
        let c = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        c.values()
            .map(|ci| {
                let sid = ci.session.map_or(0, |s| s.0);
                let deadline = deadlines.get(&sid).copied().unwrap_or_else(|| {
                    crate::server::lock(&ci.stats).accepted + SESSIONLESS_CNXN_TIMEOUT
                });
                (deadline, format!("ip: /{} sessionId: 0x{sid:x}", ci.addr))
            })
            .collect()
    };
    o.push_str(&group(conns, 10_000));
    o
}

/// `NIOServerCnxnFactory`'s `zookeeper.nio.sessionlessCnxnTimeout` default: the
/// interval its connection expiry queue rounds to, and how long a connection without
/// a session lives.
const SESSIONLESS_CNXN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Milliseconds since the epoch as Java's `Date.toString` prints them (in UTC):
/// `Mon Dec 07 02:58:47 UTC 2026`.
pub(crate) fn java_date(ms: i64) -> String {
    keeperkit_model::time::Civil::from_epoch_ms(ms).java_date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_java_prints_them() {
        // new Date(0).toString() in UTC, and two dates ZooKeeper's `dump` printed.
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_796_612_327_000), "Mon Dec 07 02:58:47 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1000), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn java_names() {
        assert_eq!(java_arch("x86_64"), "amd64");
        assert_eq!(java_arch("aarch64"), "aarch64");
        let e = envi();
        let keys: Vec<&str> =
            e.lines().skip(1).map(|l| l.split_once('=').expect("key=value").0).collect();
        assert_eq!(
            keys,
            [
                "zookeeper.version",
                "host.name",
                "os.name",
                "os.arch",
                "os.version",
                "user.name",
                "user.home",
                "user.dir"
            ]
        );
    }
}
