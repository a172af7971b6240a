//! One campaign: start the cluster, run the workloads under the nemesis, heal, wait
//! for convergence, read everything back, stop, and check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::checker::{self, Limits};
use crate::cluster::{Cluster, NODES};
use crate::history::{Input, Kind, Op, Output};
use crate::nemesis;
use crate::proxy::Proxies;
use crate::workload::{self, Conn, Recorder, Workload};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The keeperkit binary.
    pub binary: PathBuf,
    /// The work directory (created; removed after a passing run unless `keep`).
    pub dir: PathBuf,
    /// Seconds of workload under faults.
    pub seconds: u64,
    /// The seed of the workloads and of the nemesis schedule.
    pub seed: u64,
    /// Concurrent clients.
    pub clients: u32,
    /// Ports BASE+1..BASE+23 are used.
    pub base_port: u16,
    /// Keep the work directory after a passing run.
    pub keep: bool,
    /// No faults (a baseline run).
    pub no_faults: bool,
    /// Bounds of the checker's search per key.
    pub limits: Limits,
}

/// The result of a campaign.
#[derive(Debug, Default)]
pub struct Summary {
    /// Failed checks, for people.
    pub failures: Vec<String>,
    /// Everything else worth printing.
    pub lines: Vec<String>,
    /// Whether the run passed.
    pub passed: bool,
    /// The work directory.
    pub dir: PathBuf,
}

impl Summary {
    /// The summary for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "{l}");
        }
        for f in &self.failures {
            let _ = writeln!(s, "FAIL: {f}");
        }
        let _ = writeln!(
            s,
            "faults: {} ({})",
            if self.passed { "PASS" } else { "FAIL" },
            if self.passed {
                "work directory removed unless --keep".to_string()
            } else {
                format!("history and logs in {}", self.dir.display())
            }
        );
        s
    }
}

fn hosts_of(c: &Cluster, client: u32) -> Vec<(u8, String)> {
    let all: Vec<(u8, String)> =
        NODES.iter().map(|&n| (u8::try_from(n).unwrap_or(0), c.addr(n).client())).collect();
    let i = usize::try_from(client).unwrap_or(0) % 3;
    if client.is_multiple_of(2) {
        // a three-host connect string, starting at a different server per client
        let mut h = all.clone();
        h.rotate_left(i);
        h
    } else {
        vec![all[i].clone()]
    }
}

/// Runs a campaign.
pub fn run(o: &Options) -> anyhow::Result<Summary> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cluster = Arc::new(Cluster::new(o.binary.clone(), o.dir.clone(), o.base_port, t0)?);
    let proxies = rt.block_on(Proxies::start(
        &NODES
            .iter()
            .map(|&n| (n, cluster.addr(n).raft_proxy(), cluster.addr(n).raft()))
            .collect::<Vec<_>>(),
    ))?;
    let mut s = Summary { dir: o.dir.clone(), ..Summary::default() };
    let result = campaign(o, &rt, &cluster, &proxies, &mut s, t0);
    cluster.stop_polling();
    cluster.stop_all(Duration::from_secs(10));
    if let Err(e) = result {
        s.failures.push(format!("{e:#}"));
        for n in NODES {
            s.lines.push(format!("node {n} log tail:\n{}", cluster.log_tail(n, 5)));
        }
    } else if let Err(e) = compare_dumps(o, &cluster, &mut s) {
        s.failures.push(format!("{e:#}"));
    }
    s.passed = s.failures.is_empty();
    s.lines.push(format!("took {:.1} s", t0.elapsed().as_secs_f64()));
    Ok(s)
}

fn campaign(
    o: &Options,
    rt: &tokio::runtime::Runtime,
    cluster: &Arc<Cluster>,
    proxies: &Proxies,
    s: &mut Summary,
    t0: Instant,
) -> anyhow::Result<()> {
    for n in NODES {
        cluster.start(n)?;
    }
    cluster.start_polling(Duration::from_millis(100));
    let (leader, term, _) = cluster.wait_converged(Duration::from_secs(60))?;
    s.lines.push(format!(
        "cluster up: node {leader} leads term {term} ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));
    let keys = workload::keys_for(o.seconds);
    let op_timeout = Duration::from_millis(2500);
    rt.block_on(async {
        let mut c = Conn::new(hosts_of(cluster, 0), op_timeout);
        workload::setup(&mut c, keys).await.map_err(|e| anyhow!("setup: {e}"))?;
        c.close().await;
        Ok::<_, anyhow::Error>(())
    })?;

    // the workloads and the nemesis
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);
    let rec = Arc::new(Recorder::new(t0));
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let (rec, hosts) = (rec.clone(), hosts_of(cluster, client));
        let seed = o.seed;
        tasks.push(rt.spawn(async move {
            let mut conn = Conn::new(hosts, op_timeout);
            let mut w = Workload::new(seed, client);
            while Instant::now() < deadline {
                let (kind, key, input) = w.next(start.elapsed());
                let out = workload::run_op(&mut conn, &rec, client, kind, key, input).await;
                match out {
                    Some(out) => w.saw(key, &out),
                    // No answer (or a failure): back off rather than pile up
                    // indeterminate operations while the cluster has no leader; every
                    // one of them stays open to the end and widens the checker's search.
                    None => tokio::time::sleep(Duration::from_millis(400)).await,
                }
            }
            let r = conn.reconnects;
            conn.close().await;
            r
        }));
    }
    let plan = if o.no_faults { Vec::new() } else { nemesis::schedule(o.seed, o.seconds) };
    let nem = {
        let (c, p) = (cluster.clone(), proxies.clone());
        let plan = plan.clone();
        std::thread::spawn(move || nemesis::run(&c, &p, &plan, start, deadline))
    };
    let mut reconnects = 0;
    for t in tasks {
        reconnects += rt.block_on(t).map_err(|e| anyhow!("a client task failed: {e}"))?;
    }
    let nlog = nem.join().map_err(|_| anyhow!("the nemesis panicked"))?;
    let workload_s = start.elapsed().as_secs_f64();

    // heal everything
    proxies.heal();
    for n in NODES {
        if let Some(code) = cluster.exited(n) {
            s.failures.push(format!(
                "node {n} exited by itself (exit code {code:?}) during the run: {}",
                cluster.log_tail(n, 3)
            ));
        }
        if cluster.is_paused(n) {
            cluster.resume(n);
        }
        if cluster.is_down(n) {
            cluster.start(n)?;
        }
    }
    for e in &nlog.events {
        s.lines.push(format!("  {:7.2} s  {}", e.at, e.what));
    }
    let converged = cluster.wait_converged(Duration::from_secs(120));
    let ops_during = rec.ops();
    let (leader, term, index) = match converged {
        Ok(x) => x,
        Err(e) => {
            s.failures.push(format!("after healing: {e:#}"));
            return finish(o, s, &ops_during, &nlog, cluster, proxies, workload_s, reconnects, 0);
        }
    };
    s.lines
        .push(format!("healed: node {leader} leads term {term}, every node applied index {index}"));
    let statuses: Vec<(u64, crate::cluster::Status)> = NODES
        .iter()
        .filter_map(|&n| {
            Some((n, crate::cluster::status(&cluster.addr(n), Duration::from_secs(2))?))
        })
        .collect();
    let (line, differ) = crate::cluster::compare_digests(&statuses);
    if differ {
        s.failures.push(line);
    } else {
        s.lines.push(line);
    }

    // read everything back from every node
    let final_clients = rt.block_on(final_reads(cluster, &rec, keys, op_timeout));
    let ids_missing = rt.block_on(ids_present(cluster, &rec.ops(), keys, op_timeout));
    match ids_missing {
        Ok(m) => s.failures.extend(m),
        Err(e) => s.failures.push(format!("reading the ids back: {e}")),
    }
    if let Err(e) = final_clients {
        s.failures.push(format!("reading everything back: {e}"));
    }
    // every session closed; the cluster settles before it is stopped
    cluster.wait_converged(Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(500));
    let ops = rec.ops();
    finish(
        o,
        s,
        &ops,
        &nlog,
        cluster,
        proxies,
        workload_s,
        reconnects,
        ops.len() - ops_during.len(),
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    o: &Options,
    s: &mut Summary,
    ops: &[Op],
    nlog: &nemesis::Log,
    cluster: &Cluster,
    proxies: &Proxies,
    workload_s: f64,
    reconnects: u64,
    final_ops: usize,
) -> anyhow::Result<()> {
    // the history
    let path = o.dir.join("history.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    crate::history::write_jsonl(ops, &mut f)?;
    drop(f);
    let mut per: BTreeMap<(Kind, &'static str), usize> = BTreeMap::new();
    for op in ops {
        let t = match op.outcome {
            crate::history::Outcome::Ok { .. } => "ok",
            crate::history::Outcome::Fail { .. } => "fail",
            crate::history::Outcome::Info { .. } => "info",
        };
        *per.entry((op.kind, t)).or_default() += 1;
    }
    let kinds: Vec<String> = crate::history::Kind::ALL
        .iter()
        .map(|k| {
            let g = |t| per.get(&(*k, t)).copied().unwrap_or(0);
            format!("{} {}/{}/{}", k.name(), g("ok"), g("info"), g("fail"))
        })
        .collect();
    s.lines.push(format!(
        "seed {}, {} clients, {:.1} s of workload: {} ops ({} of them the final reads); ok/info/fail: {}; {} reconnections",
        o.seed,
        o.clients,
        workload_s,
        ops.len(),
        final_ops,
        kinds.join(", "),
        reconnects
    ));
    let ps = proxies.stats();
    s.lines.push(format!(
        "faults: {} ({} damaged nodes refused to start, {} started); proxy: {} raft connections, {} refused, {} severed",
        nlog.events.len(),
        nlog.refused.len(),
        nlog.started_damaged.len(),
        ps.forwarded,
        ps.refused,
        ps.severed
    ));
    for r in &nlog.refused {
        let last = r.reason.lines().last().unwrap_or("").trim();
        s.lines.push(format!(
            "  node {} refused to start on its damaged directory: exit code {} ({last})",
            r.node,
            r.code.map_or("none".to_string(), |c| c.to_string())
        ));
        if r.code.is_none_or(|c| c == 0) {
            s.failures.push(format!("node {}, damaged, exited without an error code", r.node));
        }
    }
    s.failures.extend(nlog.errors.iter().cloned());
    // leaders
    {
        let obs = cluster.observed.lock().unwrap_or_else(|e| e.into_inner());
        s.lines.push(format!("status polls: {}, terms seen: {}", obs.polls, obs.leaders.len()));
        s.failures.extend(obs.split_terms());
        for (n, at) in &obs.diverged {
            s.failures.push(format!("node {n} reported its tree diverged (/status, at {at:.2} s)"));
        }
    }
    // linearizability
    let t = Instant::now();
    let r = checker::check(ops, o.limits);
    let keys: usize = r.keys.values().sum();
    s.lines.push(format!(
        "checker: {keys} keys, {} ops ({} indeterminate) in {:.2} s: {} violations, {} anomalies, {} keys unknown",
        r.ops.values().sum::<usize>(),
        r.info.values().sum::<usize>(),
        t.elapsed().as_secs_f64(),
        r.violations.len(),
        r.anomalies.len(),
        r.unknown.len()
    ));
    for u in &r.unknown {
        s.lines.push(format!("  unknown: {u}"));
    }
    for v in &r.violations {
        s.failures.push(v.message.clone());
    }
    s.failures.extend(r.anomalies.iter().cloned());
    Ok(())
}

/// The final reads: every register, set and counter from every node (after a sync),
/// and every queue drained; all recorded in the history.
async fn final_reads(
    c: &Cluster,
    rec: &Recorder,
    keys: u32,
    op_timeout: Duration,
) -> Result<(), String> {
    for n in NODES {
        let node = u8::try_from(n).unwrap_or(0);
        let client = 1000 + u32::from(node);
        let mut conn = Conn::new(vec![(node, c.addr(n).client())], op_timeout);
        for key in 0..keys {
            for (kind, input) in [
                (Kind::Register, Input::Read),
                (Kind::Set, Input::ReadSet),
                (Kind::Counter, Input::ReadCounter),
            ] {
                if workload::run_op(&mut conn, rec, client, kind, key, input).await.is_none() {
                    return Err(format!(
                        "node {n}: the final read of {} failed",
                        workload::path(kind, key)
                    ));
                }
            }
        }
        conn.close().await;
    }
    let mut conn = Conn::new(vec![(1, c.addr(1).client())], op_timeout);
    for key in 0..keys {
        loop {
            match workload::run_op(&mut conn, rec, 2000, Kind::Queue, key, Input::Dequeue).await {
                Some(Output::Dequeued { value: Some(_) }) => {}
                Some(_) => break,
                None => {
                    return Err(format!("draining {} failed", workload::path(Kind::Queue, key)))
                }
            }
        }
    }
    conn.close().await;
    Ok(())
}

/// Every acknowledged id is present on every node.
async fn ids_present(
    c: &Cluster,
    ops: &[Op],
    keys: u32,
    op_timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut acked: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for op in ops {
        if let (Kind::Ids, Some(Output::Id { id })) = (op.kind, op.output()) {
            acked.entry(op.key).or_default().push(*id);
        }
    }
    let mut out = Vec::new();
    for n in NODES {
        let node = u8::try_from(n).unwrap_or(0);
        let mut conn = Conn::new(vec![(node, c.addr(n).client())], op_timeout);
        for key in 0..keys {
            let have: std::collections::HashSet<u64> =
                workload::list_ids(&mut conn, key).await?.into_iter().collect();
            let missing: Vec<u64> = acked
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|i| !have.contains(i))
                .copied()
                .collect();
            if !missing.is_empty() {
                out.push(format!(
                    "node {n} lacks {} acknowledged ids of {}: {:?}",
                    missing.len(),
                    workload::path(Kind::Ids, key),
                    &missing[..missing.len().min(5)]
                ));
            }
        }
        conn.close().await;
    }
    Ok(out)
}

fn run_tool(
    binary: &Path,
    args: &[&std::ffi::OsStr],
) -> anyhow::Result<(Option<i32>, Vec<u8>, String)> {
    let out = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    Ok((out.status.code(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// After the stop: `keeperkit dump` of the three data directories must be identical,
/// and `keeperkit replicas` must find no divergence.
fn compare_dumps(o: &Options, c: &Cluster, s: &mut Summary) -> anyhow::Result<()> {
    let mut dumps = Vec::new();
    for n in NODES {
        let dir = c.data_dir(n);
        let (code, out, err) = run_tool(&o.binary, &["dump".as_ref(), dir.as_os_str()])?;
        if code != Some(0) {
            s.failures.push(format!(
                "keeperkit dump {}: exit code {code:?}: {}",
                dir.display(),
                err.trim()
            ));
            return Ok(());
        }
        std::fs::write(o.dir.join(format!("n{n}.dump")), &out)?;
        dumps.push(out);
    }
    let digests: Vec<String> =
        dumps.iter().map(|d| format!("{:08x}", crc32fast::hash(d))).collect();
    let lines = dumps[0].iter().filter(|b| **b == b'\n').count();
    if dumps.iter().all(|d| *d == dumps[0]) {
        s.lines.push(format!(
            "trees identical: keeperkit dump of the three directories, {lines} znodes, crc32 {}",
            digests[0]
        ));
    } else {
        let first_diff = |a: &[u8], b: &[u8]| {
            let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
            a.lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("{x:?} vs {y:?}"))
                .unwrap_or_else(|| "one is a prefix of the other".into())
        };
        s.failures.push(format!(
            "the trees differ: dump crc32 {} (first difference between nodes 1 and 2: {}; 1 and 3: {})",
            digests.join(", "),
            first_diff(&dumps[0], &dumps[1]),
            first_diff(&dumps[0], &dumps[2])
        ));
    }
    let dirs: Vec<PathBuf> = NODES.iter().map(|&n| c.data_dir(n)).collect();
    let mut args: Vec<&std::ffi::OsStr> = vec!["replicas".as_ref()];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    let (code, out, err) = run_tool(&o.binary, &args)?;
    let text = String::from_utf8_lossy(&out);
    std::fs::write(o.dir.join("replicas.txt"), text.as_bytes())?;
    if code == Some(0) {
        s.lines.push("keeperkit replicas: no divergence".to_string());
    } else {
        s.failures.push(format!(
            "keeperkit replicas (exit code {code:?}): {}{}",
            text.lines().last().unwrap_or(""),
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(())
}
