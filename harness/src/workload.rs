//! Seeded client workloads, the ones Jepsen runs against ClickHouse Keeper: register,
//! set, counter, unique ids and queue, over the project's own ZooKeeper client
//! ([`keeperkit_server::client`]).
//!
//! Every client runs one operation at a time and records it ([`Recorder`]). A client
//! whose connection breaks records the operation in flight as indeterminate (`info`)
//! when it may have taken effect, reconnects (to the next server of its list,
//! resuming its session when the server still knows it) and goes on.
//!
//! Objects (`/jepsen/KIND/kN`) are used for [`KEY_SECONDS`] each, [`KEYS_PER_EPOCH`]
//! at a time, so each key's history stays short enough to check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keeperkit_model::{Acl, ErrorCode};
use keeperkit_server::client::{Answer, Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request, Response};
use keeperkit_vfs::SplitMix64;

use crate::history::{Input, Kind, Op, Outcome, Output};

/// How long one set of keys is used.
pub const KEY_SECONDS: u64 = 5;
/// Keys of each kind in use at a time.
pub const KEYS_PER_EPOCH: u32 = 2;

/// The keys a run of `seconds` uses, per kind (with room for the last epoch).
pub fn keys_for(seconds: u64) -> u32 {
    u32::try_from(seconds / KEY_SECONDS + 2).unwrap_or(u32::MAX / 4) * KEYS_PER_EPOCH
}

/// The znode of an object.
pub fn path(kind: Kind, key: u32) -> String {
    format!("/jepsen/{}/k{key}", kind.name())
}

/// Collects the history.
pub struct Recorder {
    t0: Instant,
    next_id: AtomicU64,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// Times are counted from `t0`.
    pub fn new(t0: Instant) -> Recorder {
        Recorder { t0, next_id: AtomicU64::new(0), ops: Mutex::default() }
    }

    /// Nanoseconds since `t0`.
    pub fn now(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn record(&self, mut op: Op) {
        op.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        op.complete_ns = self.now();
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// Every operation so far, in completion order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A client's connection to one of its servers.
pub struct Conn {
    hosts: Vec<(u8, String)>,
    pos: usize,
    client: Option<Client>,
    node: Option<u8>,
    session: Option<(i64, Vec<u8>)>,
    opts: ConnectOptions,
    /// Reconnections so far.
    pub reconnects: u64,
}

/// Why a call got no answer.
#[derive(Debug, Clone)]
pub enum Lost {
    /// Nothing was sent: no server could be reached (the operation took no effect).
    NotSent(String),
    /// The connection broke or timed out after the request was sent (its outcome is
    /// unknown).
    Unanswered(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::NotSent(e) => write!(f, "not sent: {e}"),
            Lost::Unanswered(e) => f.write_str(e),
        }
    }
}

impl Lost {
    /// The outcome of a write that got no answer.
    fn outcome(self) -> Done {
        match self {
            Lost::NotSent(e) => Done::Fail(format!("not sent: {e}")),
            Lost::Unanswered(e) => Done::Info(e),
        }
    }
}

impl Conn {
    /// A client of `hosts` (node, address), tried in turn from the first.
    pub fn new(hosts: Vec<(u8, String)>, op_timeout: Duration) -> Conn {
        Conn {
            hosts,
            pos: 0,
            client: None,
            node: None,
            session: None,
            opts: ConnectOptions {
                session_timeout_ms: 8_000,
                op_timeout,
                ..ConnectOptions::default()
            },
            reconnects: 0,
        }
    }

    /// The node connected to.
    pub fn node(&self) -> Option<u8> {
        self.node
    }

    async fn client(&mut self) -> Option<&mut Client> {
        if self.client.is_none() {
            for _ in 0..self.hosts.len() {
                let (node, addr) = self.hosts[self.pos % self.hosts.len()].clone();
                let mut opts = self.opts.clone();
                opts.resume = self.session.clone();
                let mut r = Client::connect(&addr, &opts).await;
                if r.is_err() && self.session.is_some() {
                    // the session may be gone (expired): a new one
                    opts.resume = None;
                    r = Client::connect(&addr, &opts).await;
                }
                match r {
                    Ok(c) => {
                        self.session = Some((c.session_id(), c.password().to_vec()));
                        self.node = Some(node);
                        self.client = Some(c);
                        self.reconnects += 1;
                        break;
                    }
                    Err(_) => self.pos += 1,
                }
            }
        }
        self.client.as_mut()
    }

    fn lose(&mut self, why: String) -> Lost {
        self.client = None;
        self.node = None;
        self.pos += 1;
        Lost::Unanswered(why)
    }

    /// Sends the requests pipelined; every answer, or why the connection broke.
    pub async fn call(&mut self, reqs: &[Request]) -> Result<Vec<Answer>, Lost> {
        let Some(c) = self.client().await else {
            return Err(Lost::NotSent("no server reachable".to_string()));
        };
        let mut out = Vec::with_capacity(reqs.len());
        let mut err = None;
        for r in reqs {
            if let Err(e) = c.send(r).await {
                err = Some(e.to_string());
                break;
            }
        }
        if err.is_none() {
            for _ in reqs {
                match c.recv().await {
                    Ok(a) => out.push(a),
                    Err(e) => {
                        err = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        match err {
            Some(e) => Err(self.lose(e)),
            None => Ok(out),
        }
    }

    /// Closes the session (best effort).
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
        }
    }
}

fn code(a: &Answer) -> ErrorCode {
    ErrorCode::from_i32(a.header.err)
}

fn err_text(a: &Answer) -> String {
    format!("error {} ({})", a.header.err, code(a).name())
}

fn create(path: String, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path,
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: None,
    })
}

fn parse_i64(data: &Option<Vec<u8>>) -> Option<i64> {
    std::str::from_utf8(data.as_deref()?).ok()?.trim().parse().ok()
}

/// The sequence number at the end of a sequential node's name.
pub fn seq_of(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits.parse().ok()
}

/// What an operation came to.
enum Done {
    Ok(Output),
    Fail(String),
    Info(String),
}

/// Runs one operation of `kind` on `key` and records it.
pub async fn run_op(
    conn: &mut Conn,
    rec: &Recorder,
    client: u32,
    kind: Kind,
    key: u32,
    input: Input,
) -> Option<Output> {
    let invoke_ns = rec.now();
    let p = path(kind, key);
    let node = conn.node();
    let done = match &input {
        Input::Read | Input::ReadCounter => {
            let reqs =
                [Request::Sync { path: p.clone() }, Request::GetData { path: p, watch: false }];
            match conn.call(&reqs).await {
                Err(e) => e.outcome(),
                Ok(a) => match (&a[1].body, parse_i64_of(&a[1])) {
                    (Some(Response::GetData { stat, .. }), Some(v)) if a[0].header.err == 0 => {
                        if input == Input::Read {
                            Done::Ok(Output::Value { value: v, version: stat.version })
                        } else {
                            Done::Ok(Output::Count { value: v })
                        }
                    }
                    _ => Done::Fail(format!("read: {} / {}", err_text(&a[0]), err_text(&a[1]))),
                },
            }
        }
        Input::Write { value } | Input::Cas { value, .. } => {
            let version = if let Input::Cas { expect, .. } = input { expect } else { -1 };
            let req =
                Request::SetData { path: p, data: Some(value.to_string().into_bytes()), version };
            match conn.call(&[req]).await {
                Err(e) => e.outcome(),
                Ok(a) => match (&a[0].body, code(&a[0])) {
                    (Some(Response::Stat(st)), ErrorCode::Ok) => Done::Ok(if version < 0 {
                        Output::Written { version: st.version }
                    } else {
                        Output::CasOk { version: st.version }
                    }),
                    (_, ErrorCode::BadVersion) if version >= 0 => Done::Ok(Output::CasFailed),
                    _ => Done::Info(err_text(&a[0])),
                },
            }
        }
        Input::Add { element } => {
            let req = create(format!("{p}/e{element:012}"), b"", create_mode::PERSISTENT);
            match conn.call(&[req]).await {
                Err(e) => e.outcome(),
                Ok(a) if a[0].header.err == 0 => Done::Ok(Output::Added),
                Ok(a) => Done::Info(err_text(&a[0])),
            }
        }
        Input::ReadSet => {
            let reqs =
                [Request::Sync { path: p.clone() }, Request::GetChildren { path: p, watch: false }];
            match conn.call(&reqs).await {
                Err(e) => e.outcome(),
                Ok(a) => match &a[1].body {
                    Some(Response::Children(ch)) if a[0].header.err == 0 => {
                        let mut elements: Vec<u64> =
                            ch.iter().filter_map(|c| c.strip_prefix('e')?.parse().ok()).collect();
                        elements.sort_unstable();
                        Done::Ok(Output::Elements { elements })
                    }
                    _ => Done::Fail(format!("read: {} / {}", err_text(&a[0]), err_text(&a[1]))),
                },
            }
        }
        Input::Inc => increment(conn, &p).await,
        Input::NextId => {
            let req = create(format!("{p}/id-"), b"", create_mode::PERSISTENT_SEQUENTIAL);
            match conn.call(&[req]).await {
                Err(e) => e.outcome(),
                Ok(a) => match &a[0].body {
                    Some(Response::Create { path }) if a[0].header.err == 0 => match seq_of(path) {
                        Some(id) => Done::Ok(Output::Id { id }),
                        None => Done::Info(format!("created {path:?}: no sequence number")),
                    },
                    _ => Done::Info(err_text(&a[0])),
                },
            }
        }
        Input::Enqueue { value } => {
            let req = create(
                format!("{p}/item-"),
                value.to_string().as_bytes(),
                create_mode::PERSISTENT_SEQUENTIAL,
            );
            match conn.call(&[req]).await {
                Err(e) => e.outcome(),
                Ok(a) if a[0].header.err == 0 => {
                    let seq = match &a[0].body {
                        Some(Response::Create { path }) => seq_of(path),
                        _ => None,
                    };
                    Done::Ok(Output::Enqueued { seq })
                }
                Ok(a) => Done::Info(err_text(&a[0])),
            }
        }
        Input::Dequeue => dequeue(conn, &p).await,
    };
    let node = conn.node().or(node);
    let (outcome, out) = match done {
        Done::Ok(o) => (Outcome::Ok { output: o.clone() }, Some(o)),
        Done::Fail(reason) => (Outcome::Fail { reason }, None),
        Done::Info(reason) => (Outcome::Info { reason }, None),
    };
    rec.record(Op { id: 0, client, node, kind, key, input, invoke_ns, complete_ns: 0, outcome });
    out
}

fn parse_i64_of(a: &Answer) -> Option<i64> {
    match &a.body {
        Some(Response::GetData { data, .. }) => parse_i64(data),
        _ => None,
    }
}

/// getData, then setData of the value plus one with the version read, until one
/// matches (at most 10 tries).
async fn increment(conn: &mut Conn, p: &str) -> Done {
    for _ in 0..10 {
        let a = match conn.call(&[Request::GetData { path: p.to_string(), watch: false }]).await {
            Err(e) => return Done::Fail(format!("the read before the increment: {e}")),
            Ok(a) => a,
        };
        let (Some(v), Some(Response::GetData { stat, .. })) = (parse_i64_of(&a[0]), &a[0].body)
        else {
            return Done::Fail(format!("the read before the increment: {}", err_text(&a[0])));
        };
        let req = Request::SetData {
            path: p.to_string(),
            data: Some((v + 1).to_string().into_bytes()),
            version: stat.version,
        };
        match conn.call(&[req]).await {
            Err(e) => return e.outcome(),
            Ok(a) => match code(&a[0]) {
                ErrorCode::Ok => return Done::Ok(Output::Incremented { value: v + 1 }),
                ErrorCode::BadVersion => continue,
                _ => return Done::Info(err_text(&a[0])),
            },
        }
    }
    Done::Fail("10 compare-and-sets lost the race".to_string())
}

/// sync and getChildren; getData and delete (at the version read) of the smallest; the
/// next when another client took it; listed again when every one was taken.
async fn dequeue(conn: &mut Conn, p: &str) -> Done {
    for _ in 0..5 {
        let reqs = [
            Request::Sync { path: p.to_string() },
            Request::GetChildren { path: p.to_string(), watch: false },
        ];
        let mut items = match conn.call(&reqs).await {
            Err(e) => return Done::Fail(format!("listing: {e}")),
            Ok(a) => match &a[1].body {
                Some(Response::Children(ch)) if a[0].header.err == 0 => ch.clone(),
                _ => {
                    return Done::Fail(format!(
                        "listing: {} / {}",
                        err_text(&a[0]),
                        err_text(&a[1])
                    ))
                }
            },
        };
        if items.is_empty() {
            return Done::Ok(Output::Dequeued { value: None });
        }
        items.sort_by_key(|n| seq_of(n));
        for item in items {
            let ip = format!("{p}/{item}");
            let a = match conn.call(&[Request::GetData { path: ip.clone(), watch: false }]).await {
                Err(e) => return Done::Fail(format!("reading {item}: {e}")),
                Ok(a) => a,
            };
            let (value, version) = match (&a[0].body, code(&a[0])) {
                (Some(Response::GetData { data, stat }), ErrorCode::Ok) => match parse_i64(data) {
                    Some(v) => (u64::try_from(v).unwrap_or(0), stat.version),
                    None => return Done::Fail(format!("{item} holds no number")),
                },
                (_, ErrorCode::NoNode) => continue,
                _ => return Done::Fail(format!("reading {item}: {}", err_text(&a[0]))),
            };
            match conn.call(&[Request::Delete { path: ip, version }]).await {
                Err(e) => return e.outcome(),
                Ok(a) => match code(&a[0]) {
                    ErrorCode::Ok => return Done::Ok(Output::Dequeued { value: Some(value) }),
                    ErrorCode::NoNode => continue,
                    _ => return Done::Info(err_text(&a[0])),
                },
            }
        }
    }
    Done::Fail("every item listed was taken by others, five times".to_string())
}

/// The workload of one client.
pub struct Workload {
    /// Client number.
    pub client: u32,
    rng: SplitMix64,
    counter: u64,
    /// The last version seen per register key (what a compare-and-set expects).
    versions: std::collections::HashMap<u32, i32>,
}

impl Workload {
    /// Client `client` of a run seeded with `seed`.
    pub fn new(seed: u64, client: u32) -> Workload {
        Workload {
            client,
            rng: SplitMix64(seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(u64::from(client) + 1)),
            counter: 0,
            versions: Default::default(),
        }
    }

    fn unique(&mut self) -> u64 {
        self.counter += 1;
        (u64::from(self.client) + 1) * 10_000_000 + self.counter
    }

    /// The next operation at `elapsed` into the run.
    pub fn next(&mut self, elapsed: Duration) -> (Kind, u32, Input) {
        let epoch = u32::try_from(elapsed.as_secs() / KEY_SECONDS).unwrap_or(0);
        let key = epoch * KEYS_PER_EPOCH
            + u32::try_from(self.rng.below(u64::from(KEYS_PER_EPOCH))).unwrap_or(0);
        let r = self.rng.below(100);
        let kind = match r {
            0..30 => Kind::Register,
            30..45 => Kind::Set,
            45..65 => Kind::Counter,
            65..80 => Kind::Ids,
            _ => Kind::Queue,
        };
        let r = self.rng.below(100);
        let input = match kind {
            Kind::Register if r < 40 => Input::Read,
            Kind::Register if r < 70 => {
                Input::Write { value: i64::try_from(self.unique()).unwrap_or(0) }
            }
            Kind::Register => Input::Cas {
                expect: self.versions.get(&key).copied().unwrap_or(0),
                value: i64::try_from(self.unique()).unwrap_or(0),
            },
            Kind::Set if r < 70 => Input::Add { element: self.unique() },
            Kind::Set => Input::ReadSet,
            Kind::Counter if r < 70 => Input::Inc,
            Kind::Counter => Input::ReadCounter,
            Kind::Ids => Input::NextId,
            Kind::Queue if r < 55 => Input::Enqueue { value: self.unique() },
            Kind::Queue => Input::Dequeue,
        };
        (kind, key, input)
    }

    /// Remembers what an operation returned (the versions a compare-and-set expects).
    pub fn saw(&mut self, key: u32, out: &Output) {
        if let Output::Value { version, .. }
        | Output::Written { version }
        | Output::CasOk { version } = out
        {
            self.versions.insert(key, *version);
        }
    }
}

/// Creates `/jepsen`, the kinds' nodes and `keys` objects of each kind (registers
/// and counters hold 0), pipelined; nodes that exist already are fine.
pub async fn setup(conn: &mut Conn, keys: u32) -> Result<(), String> {
    let mut reqs = vec![create("/jepsen".into(), b"", create_mode::PERSISTENT)];
    for k in Kind::ALL {
        reqs.push(create(format!("/jepsen/{}", k.name()), b"", create_mode::PERSISTENT));
    }
    for k in Kind::ALL {
        for key in 0..keys {
            let data: &[u8] = if matches!(k, Kind::Register | Kind::Counter) { b"0" } else { b"" };
            reqs.push(create(path(k, key), data, create_mode::PERSISTENT));
        }
    }
    for chunk in reqs.chunks(64) {
        let answers = conn.call(chunk).await.map_err(|e| e.to_string())?;
        for (r, a) in chunk.iter().zip(&answers) {
            if a.header.err != 0 && code(a) != ErrorCode::NodeExists {
                let Request::Create(c) = r else { continue };
                return Err(format!("creating {}: {}", c.path, err_text(a)));
            }
        }
    }
    Ok(())
}

/// The ids present under an ids object (after a sync), from one server.
pub async fn list_ids(conn: &mut Conn, key: u32) -> Result<Vec<u64>, String> {
    let p = path(Kind::Ids, key);
    let a = conn
        .call(&[Request::Sync { path: p.clone() }, Request::GetChildren { path: p, watch: false }])
        .await
        .map_err(|e| e.to_string())?;
    match &a[1].body {
        Some(Response::Children(ch)) => Ok(ch.iter().filter_map(|c| seq_of(c)).collect()),
        _ => Err(err_text(&a[1])),
    }
}
