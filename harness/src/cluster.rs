//! Three `keeperkit serve` replicas as processes, started as `scripts/cluster.sh`
//! starts them (`--id`, `--peers`, `--bootstrap`, `--http-port`, a config file), with
//! their Raft links through [`crate::proxy`].
//!
//! Node N (1..=3) binds its client, HTTP and Raft ports on its own loopback address
//! 127.0.0.(N+1); `--peers` names 127.0.0.1 for every Raft port, where the proxy of
//! that node listens. Ports: Raft BASE+N, client BASE+10+N, HTTP BASE+20+N.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rustix::process::{kill_process, Pid, Signal};

/// A node id (1..=3).
pub type NodeId = u64;

/// The nodes of a run.
pub const NODES: [NodeId; 3] = [1, 2, 3];

/// Where a node listens.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    /// The node's own loopback address.
    pub ip: Ipv4Addr,
    /// Its Raft port (bound on `ip`; the proxy listens on 127.0.0.1 with the same number).
    pub raft_port: u16,
    /// Its client port (on `ip`).
    pub client_port: u16,
    /// Its HTTP port (on `ip`).
    pub http_port: u16,
}

impl NodeAddr {
    /// The node's addresses for a base port.
    pub fn of(id: NodeId, base: u16) -> NodeAddr {
        let n = u16::try_from(id).unwrap_or(0);
        NodeAddr {
            ip: Ipv4Addr::new(127, 0, 0, 1 + u8::try_from(id).unwrap_or(0)),
            raft_port: base + n,
            client_port: base + 10 + n,
            http_port: base + 20 + n,
        }
    }

    /// `ip:client_port`.
    pub fn client(&self) -> String {
        format!("{}:{}", self.ip, self.client_port)
    }

    /// `ip:http_port`.
    pub fn http(&self) -> String {
        format!("{}:{}", self.ip, self.http_port)
    }

    /// Where the node's Raft port really is.
    pub fn raft(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), self.raft_port)
    }

    /// Where the other nodes reach it (its proxy).
    pub fn raft_proxy(&self) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.raft_port)
    }
}

/// One node's `/status`, the fields the harness reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `leader`, `follower`, `candidate`, `learner`...
    pub state: String,
    /// The Raft term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Its last log index.
    pub last_log_index: Option<u64>,
    /// Its applied index.
    pub applied_index: Option<u64>,
    /// Whether `/ready` would answer true.
    pub ready: bool,
    /// The latest tree digest sample (Raft index, digest), when `/status` has one.
    pub digest: Option<(u64, String)>,
    /// Whether the node found its tree diverged from the other members'.
    pub diverged: bool,
    /// Digest comparisons with the other members so far.
    pub digest_checks: u64,
}

impl Status {
    fn parse(text: &str) -> Option<Status> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Status {
            state: v.get("state")?.as_str()?.to_string(),
            term: v.get("term")?.as_u64()?,
            leader: v.get("leader").and_then(serde_json::Value::as_u64),
            last_log_index: v.get("last_log_index").and_then(serde_json::Value::as_u64),
            applied_index: v.get("applied_index").and_then(serde_json::Value::as_u64),
            ready: v.get("ready").and_then(serde_json::Value::as_bool).unwrap_or(false),
            digest: v.get("digest").and_then(|d| d.get("last_sample")).and_then(|s| {
                Some((s.get("index")?.as_u64()?, s.get("digest")?.as_str()?.to_string()))
            }),
            diverged: v
                .get("digest")
                .and_then(|d| d.get("diverged"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            digest_checks: v
                .get("digest")
                .and_then(|d| d.get("checks"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        })
    }
}

/// `GET /status` of a node (`None` when it does not answer in time).
pub fn status(addr: &NodeAddr, timeout: Duration) -> Option<Status> {
    let (code, body) =
        keeperkit_server::replica::http_call(&addr.http(), "GET", "/status", timeout).ok()?;
    (code == 200).then(|| Status::parse(&body)).flatten()
}

/// The nodes' latest tree digest samples compared: a line for people, and whether two
/// nodes hold different digests at the same index.
pub fn compare_digests(statuses: &[(NodeId, Status)]) -> (String, bool) {
    let mut by_index: BTreeMap<u64, BTreeMap<&str, Vec<NodeId>>> = BTreeMap::new();
    for (n, s) in statuses {
        if let Some((i, d)) = &s.digest {
            by_index.entry(*i).or_default().entry(d.as_str()).or_default().push(*n);
        }
    }
    if by_index.is_empty() {
        return ("no tree digest in /status".to_string(), false);
    }
    let mut bad = false;
    let parts: Vec<String> = by_index
        .iter()
        .map(|(i, ds)| {
            bad |= ds.len() > 1;
            let each: Vec<String> =
                ds.iter().map(|(d, ns)| format!("{d} on nodes {ns:?}")).collect();
            format!("at index {i}: {}", each.join(", "))
        })
        .collect();
    (format!("tree digests (/status) {}", parts.join("; ")), bad)
}

/// What the status pollers saw during the run.
#[derive(Debug, Default)]
pub struct Observed {
    /// Per term, the nodes seen as its leader (by their own word or a follower's).
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Per term, who said so first: (leader, reporting node, seconds into the run).
    pub first_claim: BTreeMap<(u64, u64), (u64, f64)>,
    /// The latest status of each node and when it was taken.
    pub latest: BTreeMap<NodeId, (Instant, Status)>,
    /// Status answers read.
    pub polls: u64,
    /// Nodes seen reporting a diverged tree: (node, seconds into the run).
    pub diverged: BTreeMap<NodeId, f64>,
}

impl Observed {
    /// Terms in which more than one node was seen leading.
    pub fn split_terms(&self) -> Vec<String> {
        self.leaders
            .iter()
            .filter(|(_, l)| l.len() > 1)
            .map(|(t, l)| {
                let who: Vec<String> = l
                    .iter()
                    .map(|x| match self.first_claim.get(&(*t, *x)) {
                        Some((by, at)) => format!("node {x} (reported by node {by} at {at:.2} s)"),
                        None => format!("node {x}"),
                    })
                    .collect();
                format!("term {t} had {} leaders: {}", l.len(), who.join(", "))
            })
            .collect()
    }
}

/// The process state of a node.
#[derive(Debug)]
enum Proc {
    Running(Child),
    Paused(Child),
    Down,
}

/// A cluster of three nodes started by the harness.
pub struct Cluster {
    /// The keeperkit binary.
    pub binary: PathBuf,
    /// The work directory (data dirs `nN`, logs `nN.log`).
    pub dir: PathBuf,
    /// The base port.
    pub base: u16,
    procs: Mutex<BTreeMap<NodeId, Proc>>,
    /// What the status pollers saw.
    pub observed: Arc<Mutex<Observed>>,
    stop_polling: Arc<AtomicBool>,
    pollers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    started: Instant,
}

/// A node that did not come up.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Its exit code.
    pub code: Option<i32>,
    /// The last lines of its log.
    pub reason: String,
}

fn lockp<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// The cluster's processes are not started yet; writes the config file.
    pub fn new(
        binary: PathBuf,
        dir: PathBuf,
        base: u16,
        started: Instant,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Small snapshots: a run takes several, purges the log behind them, and a
        // rebuilt node is sent a snapshot.
        std::fs::write(
            dir.join("keeper.cfg"),
            "tickTime=500\nminSessionTimeout=2000\nmaxSessionTimeout=20000\nsnapCount=2000\n4lw.commands.whitelist=*\n",
        )?;
        Ok(Cluster {
            binary,
            dir,
            base,
            procs: Mutex::new(NODES.iter().map(|n| (*n, Proc::Down)).collect()),
            observed: Arc::default(),
            stop_polling: Arc::default(),
            pollers: Mutex::default(),
            started,
        })
    }

    /// A node's addresses.
    pub fn addr(&self, n: NodeId) -> NodeAddr {
        NodeAddr::of(n, self.base)
    }

    /// A node's data directory.
    pub fn data_dir(&self, n: NodeId) -> PathBuf {
        self.dir.join(format!("n{n}"))
    }

    fn log_path(&self, n: NodeId) -> PathBuf {
        self.dir.join(format!("n{n}.log"))
    }

    /// `--peers`: the proxies' addresses.
    pub fn peers(&self) -> String {
        NODES
            .iter()
            .map(|&n| {
                let a = self.addr(n);
                format!("{n}=127.0.0.1:{}:{}", a.raft_port, a.client_port)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `n` (it must be down).
    pub fn start(&self, n: NodeId) -> anyhow::Result<()> {
        let mut procs = lockp(&self.procs);
        if !matches!(procs.get(&n), Some(Proc::Down)) {
            bail!("node {n} is not down");
        }
        let a = self.addr(n);
        let mut log = OpenOptions::new().create(true).append(true).open(self.log_path(n))?;
        writeln!(log, "=== harness: start at {:.3} s", self.started.elapsed().as_secs_f64())?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg(self.data_dir(n))
            .args(["--id", &n.to_string(), "--peers", &self.peers(), "--bootstrap"])
            .args(["--bind", &a.ip.to_string(), "--port", &a.client_port.to_string()])
            .args(["--http-port", &a.http_port.to_string(), "--heartbeat-ms", "100"])
            .arg("--config")
            .arg(self.dir.join("keeper.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        procs.insert(n, Proc::Running(child));
        Ok(())
    }

    /// SIGKILL (a paused node too).
    pub fn kill(&self, n: NodeId) {
        let mut procs = lockp(&self.procs);
        if let Some(p) = procs.insert(n, Proc::Down) {
            match p {
                Proc::Running(mut c) | Proc::Paused(mut c) => {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Proc::Down => {}
            }
        }
    }

    /// SIGSTOP.
    pub fn pause(&self, n: NodeId) {
        let mut procs = lockp(&self.procs);
        if let Some(Proc::Running(c)) = procs.remove(&n) {
            let _ = kill_process(Pid::from_child(&c), Signal::STOP);
            procs.insert(n, Proc::Paused(c));
        } else {
            // not running: put back what was there
            procs.entry(n).or_insert(Proc::Down);
        }
    }

    /// SIGCONT.
    pub fn resume(&self, n: NodeId) {
        let mut procs = lockp(&self.procs);
        match procs.remove(&n) {
            Some(Proc::Paused(c)) => {
                let _ = kill_process(Pid::from_child(&c), Signal::CONT);
                procs.insert(n, Proc::Running(c));
            }
            Some(p) => {
                procs.insert(n, p);
            }
            None => {
                procs.insert(n, Proc::Down);
            }
        }
    }

    /// Whether the node's process is down.
    pub fn is_down(&self, n: NodeId) -> bool {
        matches!(lockp(&self.procs).get(&n), Some(Proc::Down) | None)
    }

    /// Whether the node is paused.
    pub fn is_paused(&self, n: NodeId) -> bool {
        matches!(lockp(&self.procs).get(&n), Some(Proc::Paused(_)))
    }

    /// Whether the process exited by itself: its exit code.
    pub fn exited(&self, n: NodeId) -> Option<Option<i32>> {
        let mut procs = lockp(&self.procs);
        let Some(Proc::Running(c)) = procs.get_mut(&n) else { return None };
        match c.try_wait() {
            Ok(Some(st)) => {
                procs.insert(n, Proc::Down);
                Some(st.code())
            }
            _ => None,
        }
    }

    /// The last lines of a node's log.
    pub fn log_tail(&self, n: NodeId, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts node `n` and watches it for `watch`: `Err` with its exit code and log
    /// when it exits by itself in that time.
    pub fn start_and_watch(
        &self,
        n: NodeId,
        watch: Duration,
    ) -> anyhow::Result<Result<(), Refusal>> {
        self.start(n)?;
        let until = Instant::now() + watch;
        while Instant::now() < until {
            if let Some(code) = self.exited(n) {
                return Ok(Err(Refusal { code, reason: self.log_tail(n, 3) }));
            }
            if status(&self.addr(n), Duration::from_millis(300)).is_some() {
                return Ok(Ok(()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Ok(()))
    }

    /// SIGTERM every running node (SIGCONT first for a paused one) and waits; SIGKILL
    /// after `grace`.
    pub fn stop_all(&self, grace: Duration) {
        let mut procs = lockp(&self.procs);
        let mut children = Vec::new();
        for n in NODES {
            match procs.insert(n, Proc::Down) {
                Some(Proc::Paused(c)) => {
                    let _ = kill_process(Pid::from_child(&c), Signal::CONT);
                    let _ = kill_process(Pid::from_child(&c), Signal::TERM);
                    children.push(c);
                }
                Some(Proc::Running(c)) => {
                    let _ = kill_process(Pid::from_child(&c), Signal::TERM);
                    children.push(c);
                }
                _ => {}
            }
        }
        let until = Instant::now() + grace;
        for mut c in children {
            loop {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                if Instant::now() > until {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts one status poller thread per node (every `every`).
    pub fn start_polling(&self, every: Duration) {
        for n in NODES {
            let addr = self.addr(n);
            let (obs, stop, t0) = (self.observed.clone(), self.stop_polling.clone(), self.started);
            let h = std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(s) = status(&addr, Duration::from_millis(500)) {
                        let at = t0.elapsed().as_secs_f64();
                        let mut o = lockp(&obs);
                        o.polls += 1;
                        let mut claims = Vec::new();
                        if s.state == "leader" {
                            claims.push(n);
                        }
                        if let Some(l) = s.leader {
                            claims.push(l);
                        }
                        for l in claims {
                            o.leaders.entry(s.term).or_default().insert(l);
                            o.first_claim.entry((s.term, l)).or_insert((n, at));
                        }
                        if s.diverged {
                            o.diverged.entry(n).or_insert(at);
                        }
                        o.latest.insert(n, (Instant::now(), s));
                    }
                    std::thread::sleep(every);
                }
            });
            lockp(&self.pollers).push(h);
        }
    }

    /// Stops the pollers.
    pub fn stop_polling(&self) {
        self.stop_polling.store(true, Ordering::SeqCst);
        for h in lockp(&self.pollers).drain(..) {
            let _ = h.join();
        }
    }

    /// The node the freshest statuses name as leader (taken within `fresh`).
    pub fn leader(&self, fresh: Duration) -> Option<NodeId> {
        let o = lockp(&self.observed);
        o.latest
            .iter()
            .filter(|(n, (at, s))| {
                at.elapsed() < fresh && s.state == "leader" && !self.is_down(**n)
            })
            .max_by_key(|(_, (_, s))| s.term)
            .map(|(n, _)| *n)
    }

    /// Waits until every node is up and one leads a cluster in which every node has
    /// applied everything the leader has (within `timeout`).
    pub fn wait_converged(&self, timeout: Duration) -> anyhow::Result<(NodeId, u64, u64)> {
        let until = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < until {
            let st: Vec<Option<Status>> =
                NODES.iter().map(|&n| status(&self.addr(n), Duration::from_millis(800))).collect();
            if let [Some(a), Some(b), Some(c)] = st.as_slice() {
                let all = [a, b, c];
                let leader = all.iter().position(|s| s.state == "leader");
                if let Some(li) = leader {
                    let l = all[li];
                    let same = all.iter().all(|s| {
                        s.term == l.term
                            && s.leader == Some(NODES[li])
                            && s.applied_index == l.last_log_index
                            && s.last_log_index == l.last_log_index
                            && s.ready
                    });
                    if same {
                        return Ok((NODES[li], l.term, l.applied_index.unwrap_or(0)));
                    }
                }
            }
            last = format!("{st:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(anyhow!("the cluster did not converge within {timeout:?}; last statuses: {last}"))
    }
}

impl Drop for Cluster {
    /// No node outlives the harness, whatever ended it.
    fn drop(&mut self) {
        self.stop_polling();
        for n in NODES {
            self.kill(n);
        }
    }
}

/// What [`damage`] did.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The file.
    pub file: PathBuf,
    /// Where.
    pub offset: u64,
    /// How many bytes were overwritten.
    pub len: usize,
}

fn newest_file(dir: &Path, keep: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 64))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    files.pop().map(|(_, p)| p)
}

/// The file's length without the zeros at its end.
fn written_len(file: &Path) -> anyhow::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    let mut end = f.metadata()?.len();
    let mut buf = vec![0u8; 1 << 16];
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let n = usize::try_from(end - from).unwrap_or(0);
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b != 0) {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

/// Overwrites 16 bytes of a node's newest snapshot (`snapshot`) or newest log segment,
/// at a position drawn from `r` in the second half of what the file holds (past the
/// headers, where entries and nodes are). Falls back to the other kind when the first has no file.
pub fn damage(data_dir: &Path, snapshot: bool, r: u64) -> anyhow::Result<Damage> {
    use keeperkit_storage::engine::layout::{SNAPSHOT_DIR, WAL_DIR};
    let snap = || newest_file(&data_dir.join(SNAPSHOT_DIR), |n| n.ends_with(".kks"));
    let wal = || {
        newest_file(&data_dir.join(WAL_DIR), |n| {
            n != keeperkit_wal::native::META_FILE_NAME && !n.ends_with(".tmp")
        })
    };
    let file = if snapshot { snap().or_else(wal) } else { wal().or_else(snap) }
        .ok_or_else(|| anyhow!("{}: no log segment or snapshot to damage", data_dir.display()))?;
    // Log segments are preallocated: damage what was written, not the zeros after it.
    let len = written_len(&file)?;
    if len < 64 {
        bail!("{}: only {len} bytes written", file.display());
    }
    let half = len / 2;
    let offset = half + r % (len - half).saturating_sub(16).max(1);
    let mut f = OpenOptions::new().read(true).write(true).open(&file)?;
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    let mut old = [0u8; 16];
    let n = f.read(&mut old)?;
    let new: Vec<u8> =
        old[..n].iter().enumerate().map(|(i, b)| !b ^ u8::try_from(i).unwrap_or(0)).collect();
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&new)?;
    f.sync_all()?;
    Ok(Damage { file, offset, len: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_digests_are_read_and_compared() {
        let with = |id: u64, idx: u64, d: &str| {
            Status::parse(&format!(
                "{{\"id\":{id},\"state\":\"follower\",\"term\":3,\"leader\":1,\"last_log_index\":70,\"applied_index\":70,\"ready\":true,\
                 \"digest\":{{\"last_sample\":{{\"index\":{idx},\"digest\":\"{d}\"}},\"checks\":4,\"diverged\":false}}}}"
            ))
            .unwrap()
        };
        let a = with(1, 64, "00ff");
        assert_eq!((a.term, a.leader, a.applied_index, a.ready), (3, Some(1), Some(70), true));
        assert_eq!(a.digest, Some((64, "00ff".to_string())));
        assert_eq!(a.digest_checks, 4);
        let same = [(1, a.clone()), (2, with(2, 64, "00ff")), (3, with(3, 32, "0a0a"))];
        let (line, bad) = compare_digests(&same);
        assert!(!bad, "{line}");
        let differ = [(1, a), (2, with(2, 64, "00fe"))];
        assert!(compare_digests(&differ).1);
        // a server without digests in /status
        let old = Status::parse("{\"state\":\"leader\",\"term\":2,\"leader\":1}").unwrap();
        assert_eq!(old.digest, None);
        assert_eq!(compare_digests(&[(1, old)]), ("no tree digest in /status".to_string(), false));
        assert!(Status::parse("not json").is_none());
    }
}
