//! `keeperkit bench server`: a load generator for any ZooKeeper-protocol server, in
//! the spirit of ClickHouse's keeper-bench.
//!
//! N clients (one session and one connection each) run a closed loop for a fixed
//! time: each sends one request, waits for its answer, records the latency and sends
//! the next. Which request comes next is drawn from a weighted mix:
//!
//! | op | what |
//! |---|---|
//! | `create` | a new persistent node `PREFIX/run-R/cI/nNNNNNNNNNN` with the value |
//! | `delete` | the client's most recent created node (a create when it has none left) |
//! | `set` | setData of the value on a random node of the pool |
//! | `get` | getData of a random node of the pool |
//! | `exists` | exists of a random node of the pool |
//! | `list` | getChildren of the client's own parent node |
//!
//! The pool (`PREFIX/pool-B/pNNNNNNNN`, `--nodes` of them with `--value-size` bytes
//! each) is created before the clock starts, by all clients with pipelined creates;
//! nodes that exist already are kept, so a second run against the same server reuses
//! them. Latency is measured per request from the write of the request to the read of
//! its answer; an answer with a non-zero error code is counted as an error of that
//! op and not in the latency figures. Percentiles are exact (every latency is kept).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use keeperkit_model::{Acl, ErrorCode};

use crate::client::{Client, ClientError, ConnectOptions};
use crate::proto::{create_mode, CreateRequest, Request};

/// Operation kinds of a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// create of a new node.
    Create,
    /// setData on a pool node.
    Set,
    /// getData of a pool node.
    Get,
    /// exists of a pool node.
    Exists,
    /// delete of the client's last created node.
    Delete,
    /// getChildren of the client's own parent node.
    List,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 6] =
        [OpKind::Create, OpKind::Set, OpKind::Get, OpKind::Exists, OpKind::Delete, OpKind::List];

    /// The name used in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Exists => "exists",
            OpKind::Delete => "delete",
            OpKind::List => "list",
        }
    }

    fn index(self) -> usize {
        match self {
            OpKind::Create => 0,
            OpKind::Set => 1,
            OpKind::Get => 2,
            OpKind::Exists => 3,
            OpKind::Delete => 4,
            OpKind::List => 5,
        }
    }

    fn parse(s: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A weighted mix of operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(OpKind, u32)>,
    total: u32,
}

/// What is wrong with a `--mix` or the other options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A mix entry that is not `op=weight` with a known op.
    #[error("--mix: `{0}` is not op=weight with op one of create, set, get, exists, delete, list")]
    MixEntry(String),
    /// A mix whose weights sum to 0 (or overflow).
    #[error("--mix: the weights must add up to between 1 and 1000000")]
    MixTotal,
    /// The same op twice.
    #[error("--mix: {0} is given twice")]
    MixDuplicate(&'static str),
    /// Another option out of range.
    #[error("{0}")]
    Range(String),
}

impl Mix {
    /// Parses `create=10,set=40,get=50` (weights are relative).
    pub fn parse(s: &str) -> Result<Mix, OptionsError> {
        let mut weights: Vec<(OpKind, u32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) =
                part.split_once('=').ok_or_else(|| OptionsError::MixEntry(part.to_string()))?;
            let kind = OpKind::parse(name.trim())
                .ok_or_else(|| OptionsError::MixEntry(part.to_string()))?;
            let w: u32 = w.trim().parse().map_err(|_| OptionsError::MixEntry(part.to_string()))?;
            if weights.iter().any(|(k, _)| *k == kind) {
                return Err(OptionsError::MixDuplicate(kind.name()));
            }
            if w > 0 {
                weights.push((kind, w));
            }
        }
        let total = weights.iter().try_fold(0u32, |a, (_, w)| a.checked_add(*w));
        match total {
            Some(t) if (1..=1_000_000).contains(&t) => Ok(Mix { weights, total: t }),
            _ => Err(OptionsError::MixTotal),
        }
    }

    /// Whether the mix uses an op.
    pub fn uses(&self, k: OpKind) -> bool {
        self.weights.iter().any(|(o, _)| *o == k)
    }

    fn pick(&self, r: u32) -> OpKind {
        let mut x = r % self.total;
        for &(k, w) in &self.weights {
            if x < w {
                return k;
            }
            x -= w;
        }
        unreachable!("a draw below the total falls in some weight")
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, w)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{}={}", k.name(), w)?;
        }
        Ok(())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server addresses (`host:port`); client i uses `connect[i % len]`.
    pub connect: Vec<String>,
    /// Concurrent clients (sessions).
    pub clients: usize,
    /// How long the clock runs.
    pub duration: Duration,
    /// The operation mix.
    pub mix: Mix,
    /// Bytes of each value written.
    pub value_size: usize,
    /// Pool nodes read and written by get/set/exists.
    pub nodes: usize,
    /// Root of every node the run touches.
    pub prefix: String,
    /// Requested session timeout, ms.
    pub session_timeout_ms: i32,
    /// Worker threads of the runtime (0: one per core).
    pub threads: usize,
}

impl Options {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let bad = |m: &str| Err(OptionsError::Range(m.to_string()));
        if self.connect.is_empty() || self.connect.iter().any(|c| c.trim().is_empty()) {
            return bad("--connect: give HOST:PORT[,HOST:PORT...]");
        }
        if self.clients == 0 || self.clients > 10_000 {
            return bad("--clients must be between 1 and 10000");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad("--duration must be between 1 s and 24 h");
        }
        if self.value_size > crate::proto::DEFAULT_MAX_FRAME - 1024 {
            return bad("--value-size must leave room in a 1 MiB frame (at most 1047552)");
        }
        if self.nodes > 100_000_000 {
            return bad("--nodes must be at most 100000000");
        }
        let uses_pool = self.mix.uses(OpKind::Set)
            || self.mix.uses(OpKind::Get)
            || self.mix.uses(OpKind::Exists);
        if uses_pool && self.nodes == 0 {
            return bad("--nodes must be at least 1 when the mix has set, get or exists");
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') || self.prefix.contains("//")
        {
            return bad("--prefix must be an absolute znode path like /keeperkit-bench");
        }
        Ok(())
    }
}

/// Figures of one op kind.
#[derive(Debug, Clone, PartialEq)]
pub struct OpReport {
    /// The op's name (`all` for every op together).
    pub name: &'static str,
    /// Successful answers.
    pub ok: u64,
    /// Answers with a non-zero error code.
    pub errors: u64,
    /// Successful answers per second.
    pub ops_per_s: f64,
    /// Latency percentiles and extremes of the successful answers, ms.
    pub mean_ms: f64,
    /// 50th percentile, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Server addresses.
    pub connect: Vec<String>,
    /// Clients.
    pub clients: usize,
    /// The mix run.
    pub mix: String,
    /// Value size, bytes.
    pub value_size: usize,
    /// Pool nodes.
    pub nodes: usize,
    /// Seconds from the start of the clock to the last answer.
    pub seconds: f64,
    /// Seconds spent connecting and creating the pool.
    pub setup_seconds: f64,
    /// CPU time this process (the load generator) used while the clock ran, as a
    /// percentage of one core (`None` where `/proc/self/stat` cannot be read): near
    /// 100 x cores, the generator, not the server, limits the figures.
    pub client_cpu_percent: Option<f64>,
    /// Pool nodes created by this run (the others existed).
    pub pool_created: u64,
    /// Every successful answer per second.
    pub ops_per_s: f64,
    /// Successful answers.
    pub ok: u64,
    /// Error answers.
    pub errors: u64,
    /// All ops together (percentiles over every successful answer).
    pub all: OpReport,
    /// Per op kind, those of the mix (in [`OpKind::ALL`] order).
    pub ops: Vec<OpReport>,
    /// The first error code seen per op, to tell what went wrong.
    pub first_errors: Vec<(OpKind, i32)>,
}

/// What stops a run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad options.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// A client failed (connection, protocol, timeout).
    #[error("client {client}: {err}")]
    Client {
        /// Which client.
        client: usize,
        /// What happened.
        err: ClientError,
    },
    /// Setting up the run failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The runtime could not start.
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
}

/// The workspace's splitmix64, picking ops and nodes.
#[derive(Debug, Clone)]
struct Rng(keeperkit_vfs::SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        // n is at most 100 million: the modulo bias is far below what is measured
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.0.below(n)).unwrap_or(0)
    }
}

fn pool_path(prefix: &str, value_size: usize, i: usize) -> String {
    format!("{prefix}/pool-{value_size}/p{i:08}")
}

fn create_req(path: String, data: &[u8]) -> Request {
    Request::Create(CreateRequest {
        path,
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// Latencies of one client, in microseconds, per op kind.
#[derive(Debug, Default)]
struct Samples {
    lat_us: [Vec<u32>; 6],
    errors: [u64; 6],
    first_error: [Option<i32>; 6],
}

fn ok_or_exists(code: i32) -> bool {
    code == 0 || ErrorCode::from_i32(code) == ErrorCode::NodeExists
}

/// Creates `path`'s ancestors and itself (NodeExists is fine).
async fn ensure_path(c: &mut Client, path: &str) -> Result<(), LoadError> {
    let mut p = String::new();
    for part in path.split('/').filter(|s| !s.is_empty()) {
        p.push('/');
        p.push_str(part);
        let a = c
            .call(&create_req(p.clone(), b""))
            .await
            .map_err(|err| LoadError::Client { client: 0, err })?;
        if !ok_or_exists(a.header.err) {
            return Err(LoadError::Setup(format!(
                "create {p}: error {} ({})",
                a.header.err,
                ErrorCode::from_i32(a.header.err).name()
            )));
        }
    }
    Ok(())
}

/// Creates pool nodes `from..to` with up to `window` creates in flight.
async fn fill_pool(
    c: &mut Client,
    client: usize,
    o: &Options,
    value: &[u8],
    from: usize,
    to: usize,
) -> Result<u64, LoadError> {
    let window = 64;
    let mut next = from;
    let mut created = 0u64;
    let err = |err| LoadError::Client { client, err };
    while next < to || c.in_flight() > 0 {
        while next < to && c.in_flight() < window {
            c.send(&create_req(pool_path(&o.prefix, o.value_size, next), value))
                .await
                .map_err(err)?;
            next += 1;
        }
        let a = c.recv().await.map_err(err)?;
        if a.header.err == 0 {
            created += 1;
        } else if !ok_or_exists(a.header.err) {
            return Err(LoadError::Setup(format!(
                "creating the pool: error {} ({})",
                a.header.err,
                ErrorCode::from_i32(a.header.err).name()
            )));
        }
    }
    Ok(created)
}

async fn client_loop(
    c: &mut Client,
    client: usize,
    o: &Options,
    base: &str,
    value: &[u8],
    deadline: Instant,
) -> Result<Samples, LoadError> {
    let mut s = Samples::default();
    let mut rng =
        Rng(keeperkit_vfs::SplitMix64(0x5EED ^ (client as u64).wrapping_mul(0x1000_0000_01B3)));
    let mut created: Vec<u64> = Vec::new();
    let mut seq = 0u64;
    let dir = format!("{base}/c{client}");
    let err = |err| LoadError::Client { client, err };
    while Instant::now() < deadline {
        let mut kind = o.mix.pick((rng.next() >> 32) as u32);
        if kind == OpKind::Delete && created.is_empty() {
            kind = OpKind::Create;
        }
        let req = match kind {
            OpKind::Create => {
                seq += 1;
                create_req(format!("{dir}/n{seq:010}"), value)
            }
            OpKind::Delete => {
                let n = created.pop().unwrap_or_default();
                Request::Delete { path: format!("{dir}/n{n:010}"), version: -1 }
            }
            OpKind::Set => Request::SetData {
                path: pool_path(&o.prefix, o.value_size, rng.below(o.nodes)),
                data: Some(value.to_vec()),
                version: -1,
            },
            OpKind::Get => Request::GetData {
                path: pool_path(&o.prefix, o.value_size, rng.below(o.nodes)),
                watch: false,
            },
            OpKind::Exists => Request::Exists {
                path: pool_path(&o.prefix, o.value_size, rng.below(o.nodes)),
                watch: false,
            },
            OpKind::List => Request::GetChildren { path: dir.clone(), watch: false },
        };
        let t = Instant::now();
        let a = c.call(&req).await.map_err(err)?;
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        let i = kind.index();
        if a.header.err == 0 {
            s.lat_us[i].push(us);
            if kind == OpKind::Create {
                created.push(seq);
            }
        } else {
            s.errors[i] += 1;
            s.first_error[i].get_or_insert(a.header.err);
        }
    }
    Ok(s)
}

/// The `per_mille`/1000 quantile (nearest rank: the ceil(q·n)-th smallest), in ms.
fn percentile(sorted: &[u32], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * per_mille.min(1000)).div_ceil(1000).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn op_report(name: &'static str, mut lat: Vec<u32>, errors: u64, seconds: f64) -> OpReport {
    lat.sort_unstable();
    let ok = lat.len() as u64;
    let sum: u64 = lat.iter().map(|&v| u64::from(v)).sum();
    OpReport {
        name,
        ok,
        errors,
        ops_per_s: if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
        mean_ms: if ok > 0 { sum as f64 / ok as f64 / 1000.0 } else { 0.0 },
        p50_ms: percentile(&lat, 500),
        p99_ms: percentile(&lat, 990),
        p999_ms: percentile(&lat, 999),
        max_ms: lat.last().map_or(0.0, |&v| f64::from(v) / 1000.0),
    }
}

/// Runs the load on a runtime of its own and reports.
pub fn run(o: &Options) -> Result<Report, LoadError> {
    o.validate()?;
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if o.threads > 0 {
        b.worker_threads(o.threads);
    }
    let rt = b.enable_all().build().map_err(LoadError::Runtime)?;
    rt.block_on(run_async(o))
}

/// Runs the load on the current tokio runtime.
pub async fn run_async(o: &Options) -> Result<Report, LoadError> {
    o.validate()?;
    let t_setup = Instant::now();
    let copts =
        ConnectOptions { session_timeout_ms: o.session_timeout_ms, ..ConnectOptions::default() };
    let value: Vec<u8> =
        b"abcdefghijklmnopqrstuvwxyz".iter().copied().cycle().take(o.value_size).collect();
    let run_id = format!(
        "run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let base = format!("{}/{run_id}", o.prefix);

    // one client makes the parents
    {
        let mut c = Client::connect(&o.connect[0], &copts)
            .await
            .map_err(|err| LoadError::Client { client: 0, err })?;
        if o.nodes > 0 {
            ensure_path(&mut c, &format!("{}/pool-{}", o.prefix, o.value_size)).await?;
        }
        ensure_path(&mut c, &base).await?;
        for i in 0..o.clients {
            let a = c
                .call(&create_req(format!("{base}/c{i}"), b""))
                .await
                .map_err(|err| LoadError::Client { client: 0, err })?;
            if !ok_or_exists(a.header.err) {
                return Err(LoadError::Setup(format!(
                    "create {base}/c{i}: error {}",
                    a.header.err
                )));
            }
        }
        c.close().await.map_err(|err| LoadError::Client { client: 0, err })?;
    }

    // every client connects and fills its share of the pool
    let mut tasks = Vec::with_capacity(o.clients);
    for i in 0..o.clients {
        let o = o.clone();
        let copts = copts.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let addr = &o.connect[i % o.connect.len()];
            let mut c = Client::connect(addr, &copts)
                .await
                .map_err(|err| LoadError::Client { client: i, err })?;
            let share = o.nodes.div_ceil(o.clients);
            let from = (i * share).min(o.nodes);
            let to = ((i + 1) * share).min(o.nodes);
            let made = fill_pool(&mut c, i, &o, &value, from, to).await?;
            Ok::<_, LoadError>((c, made))
        }));
    }
    let mut conns = Vec::with_capacity(o.clients);
    let mut pool_created = 0;
    for t in tasks {
        let (c, made) =
            t.await.map_err(|e| LoadError::Setup(format!("a client task failed: {e}")))??;
        pool_created += made;
        conns.push(c);
    }
    let setup_seconds = t_setup.elapsed().as_secs_f64();

    // the clock
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut tasks = Vec::with_capacity(o.clients);
    for (i, mut c) in conns.into_iter().enumerate() {
        let o = o.clone();
        let value = value.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let s = client_loop(&mut c, i, &o, &base, &value, deadline).await?;
            Ok::<_, LoadError>((c, s))
        }));
    }
    let mut all: Vec<Samples> = Vec::with_capacity(o.clients);
    let mut conns = Vec::with_capacity(o.clients);
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok((c, s))) => {
                all.push(s);
                conns.push(c);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(LoadError::Setup(format!("a client task failed: {e}")));
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu_percent = match (cpu_start, process_cpu_seconds()) {
        (Some(a), Some(b)) if seconds > 0.0 => Some((b - a).max(0.0) / seconds * 100.0),
        _ => None,
    };
    if let Some(e) = failure {
        return Err(e);
    }
    for c in conns {
        // closing is not measured; a server that drops the connection here is fine
        let _ = c.close().await;
    }

    let mut ops = Vec::new();
    let mut every: Vec<u32> = Vec::new();
    let mut first_errors = Vec::new();
    let (mut ok, mut errors) = (0u64, 0u64);
    for k in OpKind::ALL {
        let i = k.index();
        let lat: Vec<u32> = all.iter().flat_map(|s| s.lat_us[i].iter().copied()).collect();
        let err: u64 = all.iter().map(|s| s.errors[i]).sum();
        if let Some(code) = all.iter().find_map(|s| s.first_error[i]) {
            first_errors.push((k, code));
        }
        if lat.is_empty() && err == 0 && !o.mix.uses(k) {
            continue;
        }
        every.extend_from_slice(&lat);
        ok += lat.len() as u64;
        errors += err;
        ops.push(op_report(k.name(), lat, err, seconds));
    }
    let all_rep = op_report("all", every, errors, seconds);
    Ok(Report {
        connect: o.connect.clone(),
        clients: o.clients,
        mix: o.mix.to_string(),
        value_size: o.value_size,
        nodes: o.nodes,
        seconds,
        setup_seconds,
        client_cpu_percent,
        pool_created,
        ops_per_s: if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
        ok,
        errors,
        all: all_rep,
        ops,
        first_errors,
    })
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat` (fields
/// 14 and 15, in clock ticks of 1/100 s: Linux's USER_HZ).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{:.3}", v)
    } else {
        "null".to_string()
    }
}

fn op_json(r: &OpReport) -> String {
    format!(
        "{{\"op\":{},\"ok\":{},\"errors\":{},\"ops_per_s\":{},\"mean_ms\":{},\"p50_ms\":{},\"p99_ms\":{},\"p999_ms\":{},\"max_ms\":{}}}",
        json_str(r.name),
        r.ok,
        r.errors,
        json_num(r.ops_per_s),
        json_num(r.mean_ms),
        json_num(r.p50_ms),
        json_num(r.p99_ms),
        json_num(r.p999_ms),
        json_num(r.max_ms)
    )
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let connect: Vec<String> = self.connect.iter().map(|c| json_str(c)).collect();
        let ops: Vec<String> = self.ops.iter().map(op_json).collect();
        let errs: Vec<String> = self
            .first_errors
            .iter()
            .map(|(k, c)| {
                format!(
                    "{{\"op\":{},\"code\":{},\"name\":{}}}",
                    json_str(k.name()),
                    c,
                    json_str(ErrorCode::from_i32(*c).name())
                )
            })
            .collect();
        format!(
            "{{\"connect\":[{}],\"clients\":{},\"mix\":{},\"value_size\":{},\"nodes\":{},\"seconds\":{},\"setup_seconds\":{},\"client_cpu_percent\":{},\"pool_created\":{},\"ok\":{},\"errors\":{},\"ops_per_s\":{},\"all\":{},\"ops\":[{}],\"first_errors\":[{}]}}",
            connect.join(","),
            self.clients,
            json_str(&self.mix),
            self.value_size,
            self.nodes,
            json_num(self.seconds),
            json_num(self.setup_seconds),
            self.client_cpu_percent.map_or("null".to_string(), json_num),
            self.pool_created,
            self.ok,
            self.errors,
            json_num(self.ops_per_s),
            op_json(&self.all),
            ops.join(","),
            errs.join(",")
        )
    }

    /// The report as a table for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} clients on {} for {:.1} s, mix {}, values of {} B, pool of {} nodes ({} created; setup {:.1} s)",
            self.clients,
            self.connect.join(","),
            self.seconds,
            self.mix,
            self.value_size,
            self.nodes,
            self.pool_created,
            self.setup_seconds
        );
        if let Some(c) = self.client_cpu_percent {
            let _ = writeln!(s, "load generator CPU while measuring: {c:.0}% of one core");
        }
        let _ = writeln!(
            s,
            "{:<8} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op", "ok", "errors", "ops/s", "mean ms", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let row = |s: &mut String, r: &OpReport| {
            let _ = writeln!(
                s,
                "{:<8} {:>10} {:>8} {:>11.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                r.name,
                r.ok,
                r.errors,
                r.ops_per_s,
                r.mean_ms,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms
            );
        };
        for r in &self.ops {
            row(&mut s, r);
        }
        row(&mut s, &self.all);
        for (k, c) in &self.first_errors {
            let _ = writeln!(
                s,
                "first error of {}: {} ({})",
                k.name(),
                c,
                ErrorCode::from_i32(*c).name()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests;
