//! The server: connections, sessions, the committer, watches.
//!
//! # Threads and order
//!
//! Every connection is a tokio task reading frames and a task writing them. A request
//! that changes state, and every request behind it on its connection while it is in
//! flight, goes to the **committer** (one thread) as a [`Job`]. The committer takes
//! everything queued (a batch), and for each job in order: preps a write into a txn
//! against the live tree ([`crate::prep`]), logs and applies it through the engine
//! (the WAL buffers it), or runs a queued read on the live tree as it stands at that
//! point. Then **one** `fdatasync` makes the whole batch durable, and only then the
//! batch is **published**: under the write lock of the published tree, in order, each
//! write fires its watches and queues its reply, each read adds its watch and queues
//! its reply; finally the published tree becomes the live one (an O(1) copy-on-write
//! clone). Reads with nothing in flight on their connection run at once on the
//! published tree under its read lock.
//!
//! So: a reply to a write is sent only when its txn is durable; nobody reads data that
//! is not durable; a connection's replies keep its request order; a watch event is
//! queued before any reply that shows the change it announces.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as stdmpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keeperkit_model::{ErrorCode, Id, SessionId};
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};
use keeperkit_storage::traits::{LogStore, StateMachine};
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::SyncPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::commit::{is_watch_op, watch_op, Committer, Job, LocalLog, TxnLog};
use crate::config::ServerConfig;
use crate::proto::{
    self, encode_connect_response, encode_event, encode_reply, op, xid, ConnectRequest,
    ConnectResponse, FrameBuffer, ProtoError, ReplyHeader, Request, Response,
};
use crate::read::{self, ReadCtx};
use crate::session;
use crate::watch::{ConnId, Mode, Watches};

/// A request's slots among those in flight: its connection's (`maxOutstandingRequests`)
/// and the server's (`globalOutstandingLimit`), both released when it is answered. A
/// write a follower forwarded holds only a slot of its batch, on the leader.
#[derive(Debug)]
pub(crate) struct Permit {
    _conn: OwnedSemaphorePermit,
    _global: Option<OwnedSemaphorePermit>,
}

impl From<OwnedSemaphorePermit> for Permit {
    fn from(p: OwnedSemaphorePermit) -> Permit {
        Permit { _conn: p, _global: None }
    }
}

/// What a connection's writer task is given.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame to send.
    Frame(Vec<u8>),
    /// Flush, then close the connection.
    Close,
}

/// A connection's outgoing queue, with the bytes it holds counted: the reader stops
/// taking requests while the client does not read its replies
/// ([`Outbox::SOFT_LIMIT`]), and a connection whose backlog still grows past
/// [`Outbox::HARD_LIMIT`] (watch events pile up too) is closed.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    backlog: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Outbox {
    /// Reading stops above this many queued bytes.
    pub(crate) const SOFT_LIMIT: usize = 4 << 20;
    /// The connection is closed above this many.
    pub(crate) const HARD_LIMIT: usize = 64 << 20;

    pub(crate) fn new() -> (Outbox, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outbox { tx, backlog: Arc::new(AtomicUsize::new(0)), drained: Arc::new(Notify::new()) },
            rx,
        )
    }

    /// Queues a frame or the close (like `UnboundedSender::send`).
    pub(crate) fn send(&self, m: Outgoing) -> Result<(), ()> {
        if let Outgoing::Frame(f) = &m {
            let was = self.backlog.fetch_add(f.len(), Ordering::Relaxed);
            if was + f.len() > Self::HARD_LIMIT {
                warn!("a client does not read its replies ({} bytes queued): closing it", was);
                return self.tx.send(Outgoing::Close).map_err(|_| ());
            }
        }
        self.tx.send(m).map_err(|_| ())
    }

    fn written(&self, n: usize) {
        self.backlog.fetch_sub(n, Ordering::Relaxed);
        self.drained.notify_one();
    }

    /// Waits until the backlog is below the soft limit.
    async fn wait_drained(&self) {
        while self.backlog.load(Ordering::Relaxed) > Self::SOFT_LIMIT {
            self.drained.notified().await;
        }
    }
}

pub(crate) type Out = Outbox;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("opening {dir}: {source}")]
    Open {
        /// The directory.
        dir: String,
        /// Why.
        source: keeperkit_storage::StorageError,
    },
    /// A socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Something else failed.
    #[error("{0}")]
    Other(String),
}

/// The TLS acceptor of `--tls-cert` / `--tls-key`.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    // ring, not aws-lc-rs: no C toolchain beyond ring's own build. (Deprecated only
    // for lacking post-quantum key exchange.)
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One session as the server tracks it.
#[derive(Debug)]
pub(crate) struct Sess {
    pub(crate) timeout_ms: i32,
    pub(crate) deadline: Instant,
    pub(crate) conn: Option<ConnId>,
    pub(crate) closing: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub(crate) map: HashMap<i64, Sess>,
    pub(crate) next_id: i64,
}

/// A connection's request statistics, as ZooKeeper's `ServerCnxn` keeps them for
/// `cons`: updated when a reply is written (the reader queues what each request is,
/// in order; the writer takes one entry per reply).
#[derive(Debug)]
pub(crate) struct ConnStats {
    pub(crate) accepted: Instant,
    pub(crate) established_ms: i64,
    /// Requests read and not answered yet: the opcode (`None` for packets ZooKeeper's
    /// `FinalRequestProcessor` does not see: auth, sasl; -1 for an undecodable one)
    /// and when the request was read.
    inflight: std::collections::VecDeque<(Option<i32>, Instant)>,
    pub(crate) last_op: &'static str,
    pub(crate) last_cxid: i64,
    pub(crate) last_zxid: i64,
    /// On the server's monotonic clock (ms since it started).
    pub(crate) last_response_ms: u64,
    pub(crate) last_latency_ms: u64,
    min_latency_ms: u64,
    pub(crate) max_latency_ms: u64,
    count: u64,
    total_latency_ms: u64,
}

impl ConnStats {
    fn new() -> ConnStats {
        ConnStats {
            accepted: Instant::now(),
            established_ms: now_ms(),
            inflight: Default::default(),
            last_op: "NA",
            last_cxid: -1,
            last_zxid: -1,
            last_response_ms: 0,
            last_latency_ms: 0,
            min_latency_ms: u64::MAX,
            max_latency_ms: 0,
            count: 0,
            total_latency_ms: 0,
        }
    }

    /// `crst`.
    pub(crate) fn reset(&mut self) {
        let (accepted, established_ms) = (self.accepted, self.established_ms);
        let inflight = std::mem::take(&mut self.inflight);
        *self = ConnStats { accepted, established_ms, inflight, ..ConnStats::new() };
    }

    pub(crate) fn min_latency_ms(&self) -> u64 {
        if self.min_latency_ms == u64::MAX {
            0
        } else {
            self.min_latency_ms
        }
    }

    pub(crate) fn avg_latency_ms(&self) -> u64 {
        self.total_latency_ms.checked_div(self.count).unwrap_or(0)
    }

    /// A reply frame written: `ServerCnxn.updateStatsForResponse`.
    fn replied(&mut self, frame: &[u8], started: &Instant) {
        let Some((op, read_at)) = self.inflight.pop_front() else { return };
        let Some(op) = op else { return };
        let xid = frame.get(4..8).map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let zxid = frame
            .get(8..16)
            .map_or(-1, |b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
        let err = frame.get(16..20).map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let now = Instant::now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if xid >= 0 {
            self.last_cxid = i64::from(xid);
        }
        self.last_zxid = zxid;
        self.last_op = op::short_name(op, err);
        self.last_response_ms = ms(now.duration_since(*started));
        let lat = ms(now.duration_since(read_at));
        self.last_latency_ms = lat;
        self.min_latency_ms = self.min_latency_ms.min(lat);
        self.max_latency_ms = self.max_latency_ms.max(lat);
        self.count += 1;
        self.total_latency_ms = self.total_latency_ms.saturating_add(lat);
    }
}

/// A live connection as `cons` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) addr: SocketAddr,
    pub(crate) out: Out,
    pub(crate) session: Option<SessionId>,
    pub(crate) close: Arc<Notify>,
    /// The connection's authenticated ids (events are filtered by READ on them).
    pub(crate) auths: Arc<Mutex<Arc<Vec<Id>>>>,
    pub(crate) received: Arc<AtomicU64>,
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) outstanding: Arc<Semaphore>,
    pub(crate) stats: Arc<Mutex<ConnStats>>,
}

/// Counters behind `mntr`, `srvr`, `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) packets_received: AtomicU64,
    pub(crate) packets_sent: AtomicU64,
    pub(crate) latency_sum_us: AtomicU64,
    pub(crate) latency_count: AtomicU64,
    pub(crate) latency_max_us: AtomicU64,
    pub(crate) latency_min_us: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) txns: AtomicU64,
    pub(crate) snapshots: AtomicU64,
}

impl Stats {
    pub(crate) fn latency(&self, started: Instant) {
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        let min = self.latency_min_us.load(Ordering::Relaxed);
        if min == 0 || us < min {
            self.latency_min_us.store(us.max(1), Ordering::Relaxed);
        }
    }

    pub(crate) fn reset(&self) {
        for a in [
            &self.packets_received,
            &self.packets_sent,
            &self.latency_sum_us,
            &self.latency_count,
            &self.latency_max_us,
            &self.latency_min_us,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

pub(crate) struct Shared {
    pub(crate) cfg: ServerConfig,
    pub(crate) engine: NativeEngine,
    pub(crate) published: RwLock<DataTree>,
    pub(crate) watches: Mutex<Watches>,
    pub(crate) sessions: Mutex<Sessions>,
    pub(crate) conns: Mutex<HashMap<ConnId, ConnInfo>>,
    /// `globalOutstandingLimit` permits.
    pub(crate) global: Arc<Semaphore>,
    jobs: Mutex<stdmpsc::Sender<Job>>,
    next_conn: AtomicU64,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    pub(crate) serving: std::sync::atomic::AtomicBool,
    stop: Notify,
    /// The replica, when this server is one of a replicated service.
    pub(crate) replica: Option<Arc<crate::replica::Replica>>,
}

impl Shared {
    pub(crate) fn submit(&self, job: Job) {
        if lock(&self.jobs).send(job).is_err() {
            debug!("the committer has stopped; job dropped");
        }
    }

    /// Whether this server decides session expiry and container deletion: a single
    /// node, or the leader of a replicated service.
    pub(crate) fn leads(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.is_leader())
    }

    fn touch(&self, s: SessionId) {
        if let Some(e) = lock(&self.sessions).map.get_mut(&s.0) {
            e.deadline =
                Instant::now() + Duration::from_millis(u64::try_from(e.timeout_ms).unwrap_or(0));
        }
    }

    /// The last zxid clients can see.
    pub(crate) fn last_zxid(&self) -> i64 {
        self.published.read().unwrap_or_else(|e| e.into_inner()).last_processed_zxid().0
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).map.len()
    }

    pub(crate) fn snapshot_now(&self) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Snapshot { reply: Some(tx) });
        rx
    }
}

pub(crate) fn reply_frame(xid: i32, zxid: i64, r: Result<Response, ErrorCode>) -> Vec<u8> {
    match r {
        Ok(b) => encode_reply(ReplyHeader { xid, zxid, err: 0 }, Some(&b)),
        Err(e) => encode_reply(ReplyHeader { xid, zxid, err: e.as_i32() }, None),
    }
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    committer: Option<std::thread::JoinHandle<()>>,
    local: SocketAddr,
    listener: Option<TcpListener>,
}

impl Server {
    /// Opens (or creates) the native data directory and binds the client port.
    pub async fn start(
        fs: Arc<dyn FileSystem>,
        dir: &std::path::Path,
        cfg: ServerConfig,
    ) -> Result<Server, ServeError> {
        let mut opts = NativeEngineOptions::new(dir);
        opts.sync = SyncPolicy::Never;
        // A snapshot is written while serving, on one idle-class thread: compression
        // workers on every core would compete with the requests and each hold chunk
        // buffers, so the snapshot takes longer but costs the clients less.
        opts.snapshot_write.threads = 1;
        opts.snapshot_priority = crate::commit::SNAPSHOT_PRIORITY;
        match cfg.pre_alloc_kib {
            Some(0) => opts.preallocate = false,
            Some(kib) => opts.segment_len = kib << 10,
            None => {}
        }
        let d = dir.display().to_string();
        let engine = tokio::task::block_in_place(|| NativeEngine::open(fs, opts))
            .map_err(|source| ServeError::Open { dir: d.clone(), source })?;
        let (tree, pos) = engine.view();
        info!(
            dir = %d,
            nodes = tree.node_count(),
            sessions = tree.sessions().len(),
            index = pos.index,
            zxid = format_args!("{:#x}", tree.last_processed_zxid().0),
            "data directory opened"
        );
        let (shared, rx, tls, local, listener) = Self::prepare(cfg, engine, tree, None).await?;
        let log = LocalLog::new(shared.engine.clone());
        Self::spawn(shared, rx, tls, local, listener, log)
    }

    /// Starts a replica of a replicated service (see [`crate::replica`]): the data
    /// directory is a Raft store; writes are committed through the leader.
    pub async fn start_replicated(
        fs: Arc<dyn FileSystem>,
        dir: &std::path::Path,
        cfg: ServerConfig,
        rc: crate::replica::ReplicaConfig,
    ) -> Result<Server, ServeError> {
        let opened = crate::replica::open(fs, dir, &cfg, &rc).await?;
        let (engine, tree, replica) =
            (opened.engine.clone(), opened.tree.clone(), opened.replica.clone());
        info!(
            dir = %dir.display(),
            id = rc.id,
            nodes = tree.node_count(),
            zxid = format_args!("{:#x}", tree.last_processed_zxid().0),
            "replica opened"
        );
        let (shared, rx, tls, local, listener) =
            Self::prepare(cfg, engine, tree, Some(replica.clone())).await?;
        opened.run(&shared)?;
        let log = crate::replica::RaftLog::new(replica, shared.engine.clone(), shared.clone());
        Self::spawn(shared, rx, tls, local, listener, log)
    }

    #[allow(clippy::type_complexity)]
    async fn prepare(
        cfg: ServerConfig,
        engine: NativeEngine,
        tree: DataTree,
        replica: Option<Arc<crate::replica::Replica>>,
    ) -> Result<
        (
            Arc<Shared>,
            stdmpsc::Receiver<Job>,
            Option<tokio_rustls::TlsAcceptor>,
            SocketAddr,
            TcpListener,
        ),
        ServeError,
    > {
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key).map_err(ServeError::Tls)?),
            None => None,
        };
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: cfg.listen, source })?;
        let local = listener.local_addr().map_err(|e| ServeError::Other(e.to_string()))?;
        let now = Instant::now();
        let mut sessions = Sessions::default();
        let mut max_id = 0i64;
        for s in tree.sessions() {
            max_id = max_id.max(s.id.0);
            sessions.map.insert(
                s.id.0,
                Sess {
                    timeout_ms: s.timeout_ms,
                    deadline: now + Duration::from_millis(u64::try_from(s.timeout_ms).unwrap_or(0)),
                    conn: None,
                    closing: false,
                },
            );
        }
        let server_id = replica.as_ref().map_or(1, |r| u8::try_from(r.id).unwrap_or(u8::MAX));
        sessions.next_id = session::first_session_id(server_id, now_ms(), max_id.saturating_add(1));
        let (tx, rx) = stdmpsc::channel();
        let global = Arc::new(Semaphore::new(cfg.global_outstanding));
        let shared = Arc::new(Shared {
            global,
            cfg,
            engine,
            published: RwLock::new(tree),
            watches: Mutex::new(Watches::default()),
            sessions: Mutex::new(sessions),
            conns: Mutex::new(HashMap::new()),
            jobs: Mutex::new(tx),
            next_conn: AtomicU64::new(1),
            stats: Stats::default(),
            started: now,
            serving: std::sync::atomic::AtomicBool::new(false),
            stop: Notify::new(),
            replica,
        });
        Ok((shared, rx, tls, local, listener))
    }

    // Startup only: the error is the engine's (large).
    #[allow(clippy::result_large_err)]
    fn spawn<L: TxnLog>(
        shared: Arc<Shared>,
        rx: stdmpsc::Receiver<Job>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        local: SocketAddr,
        listener: TcpListener,
        log: L,
    ) -> Result<Server, ServeError> {
        let s2 = shared.clone();
        let committer = std::thread::Builder::new()
            .name("keeperkit-committer".into())
            .spawn(move || Committer::new(s2, log).run(rx))
            .map_err(|e| ServeError::Other(format!("starting the committer: {e}")))?;
        Ok(Server { shared, tls, committer: Some(committer), local, listener: Some(listener) })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` completes, then stops cleanly: no new connections, every
    /// queued job finished (durable), connections closed. Sessions stay (they survive
    /// a restart within their timeout).
    pub async fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let listener =
            self.listener.take().ok_or_else(|| ServeError::Other("already served".into()))?;
        let shared = self.shared.clone();
        let ticker = tokio::spawn(expiry_loop(shared.clone()));
        let http = match shared.cfg.http_listen {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?;
                info!(%addr, "http endpoints: /livez /ready /metrics");
                Some(tokio::spawn(crate::http::serve(shared.clone(), l)))
            }
            None => None,
        };
        let containers = tokio::spawn(container_loop(shared.clone()));
        shared.serving.store(true, Ordering::SeqCst);
        info!(addr = %self.local, "serving");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = shared.stop.notified() => break,
                acc = listener.accept() => match acc {
                    Ok((stream, addr)) => {
                        let s = shared.clone();
                        let _ = stream.set_nodelay(true);
                        match self.tls.clone() {
                            None => {
                                tokio::spawn(async move { connection(s, stream, addr).await });
                            }
                            Some(acceptor) => {
                                tokio::spawn(async move {
                                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                                    match hs.await {
                                        Ok(Ok(tls)) => connection(s, tls, addr).await,
                                        Ok(Err(e)) => info!(%addr, "TLS handshake failed: {e}"),
                                        Err(_) => info!(%addr, "TLS handshake timed out"),
                                    }
                                });
                            }
                        }
                    }
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        info!("stopping");
        shared.serving.store(false, Ordering::SeqCst);
        drop(listener);
        ticker.abort();
        containers.abort();
        if let Some(h) = http {
            h.abort();
        }
        shared.submit(Job::Stop);
        if let Some(h) = self.committer.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let conns: Vec<ConnInfo> = lock(&shared.conns).values().cloned().collect();
        for c in conns {
            let _ = c.out.send(Outgoing::Close);
            c.close.notify_one();
        }
        if let Some(r) = &shared.replica {
            if let Err(e) = r.raft.shutdown().await {
                error!("stopping raft: {e}");
            }
            r.stop_applier().await;
        }
        if let Err(e) = shared.engine.sync() {
            error!("final sync failed: {e}");
        }
        info!("stopped");
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.committer.take() {
            self.shared.submit(Job::Stop);
            let _ = h.join();
        }
    }
}

/// Expires sessions whose deadline passed: a closeSession txn each.
async fn expiry_loop(shared: Arc<Shared>) {
    let period =
        (shared.cfg.tick() / 2).clamp(Duration::from_millis(10), Duration::from_millis(1000));
    let mut iv = tokio::time::interval(period);
    loop {
        iv.tick().await;
        if !shared.leads() {
            continue;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut ss = lock(&shared.sessions);
            for (id, s) in ss.map.iter_mut() {
                if !s.closing && s.deadline <= now {
                    s.closing = true;
                    expired.push((*id, s.timeout_ms));
                }
            }
        }
        for (id, t) in expired {
            info!("Expiring session 0x{id:x}, timeout of {t}ms exceeded");
            shared.submit(Job::Expire { session: SessionId(id) });
        }
    }
}

/// `ContainerManager`: every `containerCheckInterval`, empty containers that had
/// children and childless TTL nodes not modified for their TTL are deleted
/// (deleteContainer requests of the server itself).
async fn container_loop(shared: Arc<Shared>) {
    let mut iv = tokio::time::interval(Duration::from_millis(shared.cfg.container_check_ms));
    iv.tick().await;
    loop {
        iv.tick().await;
        if !shared.leads() {
            continue;
        }
        let now = now_ms();
        let mut doomed = Vec::new();
        {
            let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
            t.for_each_preorder(|path, n| {
                if n.num_children() > 0 {
                    return;
                }
                match n.owner() {
                    keeperkit_model::EphemeralOwner::Container if n.stat().cversion > 0 => {
                        doomed.push(path.to_string())
                    }
                    keeperkit_model::EphemeralOwner::Ttl(ttl) if now - n.stat().mtime > ttl => {
                        doomed.push(path.to_string())
                    }
                    _ => {}
                }
            });
        }
        for path in doomed {
            debug!(path, "deleting an empty container or expired TTL node");
            shared.submit(Job::Internal { req: Request::DeleteContainer { path } });
        }
    }
}

/// What the connection knows about itself.
struct Conn {
    id: ConnId,
    addr: SocketAddr,
    out: Out,
    /// The authenticated ids in ZooKeeper's order (`auth_set`'s), shared with the requests.
    auths: Arc<Vec<Id>>,
    auth_set: crate::javahash::AuthIds,
    shared_auths: Arc<Mutex<Arc<Vec<Id>>>>,
    session: Option<SessionId>,
    outstanding: Arc<Semaphore>,
    max_outstanding: usize,
    received: Arc<AtomicU64>,
    stats: Arc<Mutex<ConnStats>>,
}

/// The address as Java's `InetAddress.getHostAddress` writes it (IPv6 uncompressed).
fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.segments().map(|g| format!("{g:x}")).join(":"),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// What the writer counts: frames sent, and the replies among them (every frame but
/// the first, the connect response or a four-letter word's answer, and events, whose
/// xid is -1).
struct Counted {
    sent: Arc<AtomicU64>,
    stats: Arc<Mutex<ConnStats>>,
    started: Instant,
    frames: u64,
}

impl Counted {
    fn frame(&mut self, f: &[u8]) {
        self.frames += 1;
        self.sent.fetch_add(1, Ordering::Relaxed);
        if self.frames > 1 && f.get(4..8) != Some(&(-1i32).to_be_bytes()[..]) {
            lock(&self.stats).replied(f, &self.started);
        }
    }
}

async fn writer<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    out: Outbox,
    close: Arc<Notify>,
    mut counted: Counted,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    'outer: while let Some(m) = rx.recv().await {
        let mut closing = false;
        match m {
            Outgoing::Frame(f) => {
                counted.frame(&f);
                buf.extend_from_slice(&f);
            }
            Outgoing::Close => closing = true,
        }
        while !closing && buf.len() < (1 << 20) {
            match rx.try_recv() {
                Ok(Outgoing::Frame(f)) => {
                    counted.frame(&f);
                    buf.extend_from_slice(&f);
                }
                Ok(Outgoing::Close) => closing = true,
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if let Err(e) = wr.write_all(&buf).await {
                debug!("write failed: {e}");
                break 'outer;
            }
            if let Err(e) = wr.flush().await {
                debug!("flush failed: {e}");
                break 'outer;
            }
            out.written(buf.len());
            buf.clear();
        }
        if closing {
            break;
        }
    }
    let _ = wr.shutdown().await;
    close.notify_one();
}

/// One client connection, from accept to close.
async fn connection<S>(shared: Arc<Shared>, stream: S, addr: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ip = ip_string(addr.ip());
    let max = shared.cfg.max_client_cnxns;
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = Outbox::new();
    let close = Arc::new(Notify::new());
    let outstanding = Arc::new(Semaphore::new(shared.cfg.max_outstanding));
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(ConnStats::new()));
    let mut auth_set = crate::javahash::AuthIds::new();
    auth_set.insert(Id { scheme: "ip".into(), id: ip.clone() });
    let auths = Arc::new(auth_set.to_vec());
    let shared_auths = Arc::new(Mutex::new(auths.clone()));
    {
        let mut conns = lock(&shared.conns);
        if max > 0 && conns.values().filter(|c| c.addr.ip() == addr.ip()).count() >= max {
            warn!("Too many connections from {ip} - max is {max}");
            return;
        }
        conns.insert(
            id,
            ConnInfo {
                addr,
                out: tx.clone(),
                session: None,
                close: close.clone(),
                auths: shared_auths.clone(),
                received: received.clone(),
                sent: sent.clone(),
                outstanding: outstanding.clone(),
                stats: stats.clone(),
            },
        );
    }
    let (rd, wr) = tokio::io::split(stream);
    let counted = Counted { sent, stats: stats.clone(), started: shared.started, frames: 0 };
    tokio::spawn(writer(wr, rx, tx.clone(), close.clone(), counted));
    let mut conn = Conn {
        id,
        addr,
        out: tx.clone(),
        auths,
        auth_set,
        shared_auths,
        session: None,
        outstanding,
        max_outstanding: shared.cfg.max_outstanding,
        received,
        stats,
    };
    debug!(conn = id, %addr, "accepted");
    let reason = read_loop(&shared, &mut conn, rd, &close).await;
    match &reason {
        Ok(()) => debug!(conn = id, %addr, "closed"),
        Err(r) => {
            info!(conn = id, %addr, session = conn.session.map(|s| format!("0x{:x}", s.0)), "closing connection: {r}")
        }
    }
    let _ = tx.send(Outgoing::Close);
    lock(&shared.conns).remove(&id);
    lock(&shared.watches).remove_conn(id);
    if let Some(s) = conn.session {
        if let Some(e) = lock(&shared.sessions).map.get_mut(&s.0) {
            if e.conn == Some(id) {
                e.conn = None;
            }
        }
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    mut rd: R,
    close: &Notify,
) -> Result<(), String> {
    let max = shared.cfg.max_frame;
    let mut fb = FrameBuffer::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut connected = false;
    let (min_timeout, _) = shared.cfg.session_bounds();
    let handshake = Instant::now()
        + Duration::from_millis(u64::try_from(min_timeout).unwrap_or(6000).max(1000));
    loop {
        // Every complete frame buffered is handled before reading more.
        loop {
            if !connected {
                if let Some(w) = fb.peek4() {
                    if let Ok(word) = std::str::from_utf8(&w) {
                        if crate::fourlw::is_word(word) {
                            conn.received.fetch_add(1, Ordering::Relaxed);
                            let text = crate::fourlw::answer(shared, word, conn.id);
                            let _ = conn.out.send(Outgoing::Frame(text.into_bytes()));
                            return Ok(());
                        }
                    }
                }
            }
            let frame = match fb.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame: {e}")),
            };
            conn.received.fetch_add(1, Ordering::Relaxed);
            shared.stats.packets_received.fetch_add(1, Ordering::Relaxed);
            if !connected {
                connect(shared, conn, &frame).await?;
                connected = true;
                continue;
            }
            handle(shared, conn, &frame).await?;
        }
        if connected {
            // A client that does not read its replies gets no more of its requests read.
            conn.out.wait_drained().await;
        }
        let n = if connected {
            tokio::select! {
                r = rd.read(&mut buf) => r,
                _ = close.notified() => return Ok(()),
            }
        } else {
            tokio::select! {
                r = rd.read(&mut buf) => r,
                _ = close.notified() => return Ok(()),
                _ = tokio::time::sleep_until(handshake.into()) => {
                    return Err("no connect request within the handshake time".into())
                }
            }
        };
        match n {
            Ok(0) => {
                if fb.pending() > 0 {
                    return Err(format!(
                        "the client closed in the middle of a frame ({} bytes)",
                        fb.pending()
                    ));
                }
                return Ok(());
            }
            Ok(n) => fb.extend(&buf[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

async fn connect(shared: &Arc<Shared>, conn: &mut Conn, frame: &[u8]) -> Result<(), String> {
    let req = ConnectRequest::decode(frame, shared.cfg.max_frame)
        .map_err(|e| format!("bad connect request: {e}"))?;
    let last = shared.last_zxid();
    if req.last_zxid_seen > last {
        return Err(format!(
            "Refusing session request for client {} as it has seen zxid 0x{:x} our last zxid is 0x{:x} client must try another server",
            conn.addr, req.last_zxid_seen, last
        ));
    }
    let timeout = shared.cfg.negotiate(req.timeout_ms);
    let ro = req.read_only.map(|_| false);
    let refuse = |conn: &Conn, why: String| {
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: ro,
        };
        let _ = conn.out.send(Outgoing::Frame(encode_connect_response(&resp)));
        Err(why)
    };
    let id = if req.session_id == 0 {
        let (tx, rx) = oneshot::channel();
        shared.submit(Job::CreateSession { timeout_ms: timeout, reply: tx });
        match rx.await {
            Ok(Some(id)) => {
                info!(
                    "Established session 0x{:x} with negotiated timeout {timeout} for client {}",
                    id.0, conn.addr
                );
                id
            }
            _ => return Err("the session could not be created".into()),
        }
    } else {
        let id = SessionId(req.session_id);
        if req.passwd != session::password(id) {
            return refuse(conn, format!("wrong password for session 0x{:x}", id.0));
        }
        let mut ss = lock(&shared.sessions);
        let Some(s) = ss.map.get_mut(&id.0).filter(|s| !s.closing) else {
            drop(ss);
            return refuse(conn, format!("session 0x{:x} is expired or unknown", id.0));
        };
        s.timeout_ms = timeout;
        s.deadline = Instant::now() + Duration::from_millis(u64::try_from(timeout).unwrap_or(0));
        if let Some(prev) = s.conn.replace(conn.id) {
            if let Some(ci) = lock(&shared.conns).get(&prev) {
                let _ = ci.out.send(Outgoing::Close);
                ci.close.notify_one();
            }
        }
        info!(
            "Re-established session 0x{:x} with negotiated timeout {timeout} for client {}",
            id.0, conn.addr
        );
        id
    };
    if req.session_id == 0 {
        if let Some(s) = lock(&shared.sessions).map.get_mut(&id.0) {
            s.conn = Some(conn.id);
        }
    }
    conn.session = Some(id);
    if let Some(ci) = lock(&shared.conns).get_mut(&conn.id) {
        ci.session = Some(id);
    }
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms: timeout,
        session_id: id.0,
        passwd: session::password(id),
        read_only: ro,
    };
    let _ = conn.out.send(Outgoing::Frame(encode_connect_response(&resp)));
    Ok(())
}

/// Opcodes ZooKeeper logs a txn for (an error txn when their body is bad).
fn is_txn_op(o: i32) -> bool {
    matches!(
        o,
        op::CREATE
            | op::CREATE2
            | op::CREATE_TTL
            | op::CREATE_CONTAINER
            | op::DELETE
            | op::DELETE_CONTAINER
            | op::SET_DATA
            | op::SET_ACL
            | op::CHECK
            | op::MULTI
            | op::RECONFIG
    )
}

/// Waits for a slot of the connection, then for one of the server: reading from this
/// connection stops meanwhile (TCP pushes back on the client).
async fn permit(shared: &Shared, conn: &Conn) -> Result<Permit, String> {
    let c = conn.outstanding.clone().acquire_owned().await.map_err(|e| format!("closed: {e}"))?;
    let g = shared.global.clone().acquire_owned().await.map_err(|e| format!("closed: {e}"))?;
    Ok(Permit { _conn: c, _global: Some(g) })
}

fn in_flight(conn: &Conn) -> bool {
    conn.outstanding.available_permits() < conn.max_outstanding
}

/// Sends a reply decided here, behind whatever is in flight.
async fn reply_in_order(
    shared: &Arc<Shared>,
    conn: &Conn,
    frame: Vec<u8>,
    close: bool,
) -> Result<(), String> {
    if in_flight(conn) {
        let p = permit(shared, conn).await?;
        shared.submit(Job::Reply { out: conn.out.clone(), frame, close, permit: p });
    } else {
        let _ = conn.out.send(Outgoing::Frame(frame));
        if close {
            let _ = conn.out.send(Outgoing::Close);
        }
    }
    Ok(())
}

async fn handle(shared: &Arc<Shared>, conn: &mut Conn, frame: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    let Some(session) = conn.session else { return Err("no session".into()) };
    shared.touch(session);
    let decoded = proto::decode_request(frame, shared.cfg.max_frame);
    let opcode = match &decoded {
        Ok((_, Request::Auth { .. } | Request::Sasl { .. })) => None,
        Ok((_, r)) => Some(r.op()),
        Err(_) => Some(-1),
    };
    lock(&conn.stats).inflight.push_back((opcode, started));
    let (hdr, req) = match decoded {
        Ok(x) => x,
        Err((Some(h), ProtoError::UnknownOp(o))) => {
            let f = reply_frame(h.xid, shared.last_zxid(), Err(ErrorCode::Unimplemented));
            reply_in_order(shared, conn, f, true).await?;
            return Err(format!("unknown opcode {o} (xid {})", h.xid));
        }
        Err((Some(h), e)) if is_txn_op(h.op) => {
            warn!(
                conn = conn.id,
                "request xid {} ({}) could not be decoded: {e}",
                h.xid,
                op::name(h.op)
            );
            let p = permit(shared, conn).await?;
            shared.submit(Job::Failed {
                session,
                xid: h.xid,
                out: conn.out.clone(),
                permit: p,
                started,
            });
            return Ok(());
        }
        Err((Some(h), e)) => {
            warn!(
                conn = conn.id,
                "request xid {} ({}) could not be decoded: {e}",
                h.xid,
                op::name(h.op)
            );
            let f = reply_frame(h.xid, shared.last_zxid(), Err(ErrorCode::MarshallingError));
            return reply_in_order(shared, conn, f, false).await;
        }
        Err((None, e)) => return Err(format!("bad request header: {e}")),
    };
    match &req {
        Request::Auth { scheme, auth, .. } => {
            let ok = match scheme.as_str() {
                "digest" => match crate::acl::digest_id(auth) {
                    Some(d) => {
                        // DigestAuthenticationProvider: the super id first, then the digest.
                        if shared.cfg.super_digest.as_deref() == Some(d.as_str()) {
                            let s =
                                Id { scheme: crate::acl::SUPER_SCHEME.into(), id: String::new() };
                            conn.auth_set.insert(s);
                        }
                        conn.auth_set.insert(Id { scheme: "digest".into(), id: d });
                        conn.auths = Arc::new(conn.auth_set.to_vec());
                        *lock(&conn.shared_auths) = conn.auths.clone();
                        true
                    }
                    None => false,
                },
                "ip" => {
                    // IPAuthenticationProvider adds the connection's address again.
                    conn.auth_set.insert(Id { scheme: "ip".into(), id: ip_string(conn.addr.ip()) });
                    conn.auths = Arc::new(conn.auth_set.to_vec());
                    *lock(&conn.shared_auths) = conn.auths.clone();
                    true
                }
                _ => false,
            };
            if ok {
                info!(
                    "Session 0x{:x}: auth success for scheme {scheme} and address {}",
                    session.0, conn.addr
                );
                let f = encode_reply(ReplyHeader { xid: hdr.xid, zxid: 0, err: 0 }, None);
                return reply_in_order(shared, conn, f, false).await;
            }
            let f = encode_reply(
                ReplyHeader { xid: hdr.xid, zxid: 0, err: ErrorCode::AuthFailed.as_i32() },
                None,
            );
            reply_in_order(shared, conn, f, true).await?;
            return Err(format!("authentication failed for scheme {scheme:?}"));
        }
        Request::Sasl { .. } => {
            let f = encode_reply(
                ReplyHeader { xid: hdr.xid, zxid: 0, err: ErrorCode::AuthFailed.as_i32() },
                None,
            );
            reply_in_order(shared, conn, f, true).await?;
            return Err("SASL is not enabled".into());
        }
        _ => {}
    }
    let is_watch = is_watch_op(&req);
    // A replica's `sync` goes through the committer to the leader.
    let sync_here = shared.replica.is_none() || !matches!(req, Request::Sync { .. });
    if !in_flight(conn) && sync_here && (read::is_read(&req) || is_watch) {
        // Inline, on the published tree, under its read lock (see the module docs).
        let t = shared.published.read().unwrap_or_else(|e| e.into_inner());
        let zxid = t.last_processed_zxid().0;
        let x = if matches!(req, Request::Ping) { xid::PING } else { hdr.xid };
        let resp = if is_watch {
            let mut w = lock(&shared.watches);
            let mut evs = Vec::new();
            let r = watch_op(&t, &mut w, conn.id, &req, &mut evs);
            for ev in evs {
                let _ = conn.out.send(Outgoing::Frame(encode_event(-1, &ev)));
            }
            r
        } else {
            let rctx = ReadCtx { session, auths: &conn.auths };
            let (r, watch) = read::read(&t, &rctx, &req);
            if let Some((table, path)) = watch {
                lock(&shared.watches).add(table, &path, conn.id, Mode::Standard);
            }
            r
        };
        let _ = conn.out.send(Outgoing::Frame(reply_frame(x, zxid, resp)));
        drop(t);
        shared.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        shared.stats.latency(started);
        return Ok(());
    }
    let p = permit(shared, conn).await?;
    shared.submit(Job::Request {
        conn: conn.id,
        session,
        xid: hdr.xid,
        req,
        auths: conn.auths.clone(),
        out: conn.out.clone(),
        permit: p,
        started,
    });
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C): the `shutdown` of
/// [`Server::serve`] for a process that stops on them.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                }
            }
            Err(e) => {
                warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
