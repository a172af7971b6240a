//! A small blocking ZooKeeper client over the codec, and in-process servers: a single
//! node ([`TestServer`]) or the replicas of a replicated service ([`start_replica`]),
//! each on its own runtime thread ([`ServerThread`]).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keeperkit_model::{Acl, ErrorCode};
use keeperkit_server::proto::{
    decode_reply, encode_connect, encode_request, ConnectRequest, ConnectResponse, CreateRequest,
    FrameBuffer, Reply, ReplyHeader, Request, Response, WatcherEvent, DEFAULT_MAX_FRAME,
};
use keeperkit_server::replica::{http_call, PeerAddr, ReplicaConfig};
use keeperkit_server::{ServeError, Server, ServerConfig};
use serde_json::Value;

/// A server on its own runtime thread (two workers), serving until [`ServerThread::stop`]
/// or until dropped; either way it stops cleanly (its ports closed, its directory
/// closed) before the call returns.
pub struct ServerThread {
    /// The address clients connect to.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Starts the server `start` makes on `dir` (it panics when the server cannot
    /// start, and so does this call, after at most 30 s).
    pub fn spawn<F, Fut>(dir: &Path, start: F) -> ServerThread
    where
        F: FnOnce(PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Server, ServeError>>,
    {
        let (atx, arx) = std::sync::mpsc::channel();
        let (stx, srx) = tokio::sync::oneshot::channel::<()>();
        let d = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s = start(d).await.unwrap();
                atx.send(s.local_addr()).unwrap();
                s.serve(async {
                    let _ = srx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = arx.recv_timeout(Duration::from_secs(30)).expect("the server started");
        ServerThread { addr, stop: Some(stx), thread: Some(thread) }
    }

    /// Stops the server and waits until it has stopped.
    pub fn stop(mut self) {
        self.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(t) = self.thread.take() {
            // A server thread that panicked fails the test, unless it fails already.
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the server thread panicked");
            }
        }
    }
}

/// Member `i` of a test cluster whose ports start at `base`: Raft on `base + i`,
/// clients on `base + 10 + i` (and HTTP on `base + 20 + i`, see [`replica_configs`]).
pub fn peer(base: u16, i: u64) -> PeerAddr {
    let i16 = u16::try_from(i).unwrap();
    PeerAddr { host: "127.0.0.1".into(), raft_port: base + i16, client_port: base + 10 + i16 }
}

/// Members 1 to `n` of a test cluster whose ports start at `base`.
pub fn members(base: u16, n: u64) -> BTreeMap<u64, PeerAddr> {
    (1..=n).map(|i| (i, peer(base, i))).collect()
}

/// The address of a member's HTTP port (its client port + 10).
pub fn http_of(p: &PeerAddr) -> String {
    format!("127.0.0.1:{}", p.client_port + 10)
}

/// The address of a member's client port.
pub fn client_of(p: &PeerAddr) -> String {
    format!("127.0.0.1:{}", p.client_port)
}

/// The settings of member `id` of `peers` in these tests: clients on its client port,
/// HTTP on the client port + 10, ticks of 200 ms, sessions of 1 to 20 s, every
/// four-letter word; `--bootstrap`, Raft on 127.0.0.1, heartbeats of 100 ms.
pub fn replica_configs(id: u64, peers: &BTreeMap<u64, PeerAddr>) -> (ServerConfig, ReplicaConfig) {
    let p = &peers[&id];
    let cfg = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], p.client_port)),
        http_listen: Some(SocketAddr::from(([127, 0, 0, 1], p.client_port + 10))),
        tick_time_ms: 200,
        min_session_timeout_ms: Some(1000),
        max_session_timeout_ms: Some(20_000),
        four_letter_words: vec!["*".into()],
        ..Default::default()
    };
    let rc = ReplicaConfig {
        id,
        peers: peers.clone(),
        bootstrap: true,
        raft_bind: "127.0.0.1".parse().unwrap(),
        heartbeat_ms: 100,
        join: None,
    };
    (cfg, rc)
}

/// Starts member `id` of `peers` on `dir` with [`replica_configs`]' settings as `tweak`
/// changes them.
pub fn start_replica(
    dir: &Path,
    id: u64,
    peers: &BTreeMap<u64, PeerAddr>,
    tweak: impl FnOnce(&mut ServerConfig, &mut ReplicaConfig),
) -> ServerThread {
    let (mut cfg, mut rc) = replica_configs(id, peers);
    tweak(&mut cfg, &mut rc);
    ServerThread::spawn(dir, move |d| async move {
        Server::start_replicated(keeperkit_vfs::std_fs(), &d, cfg, rc).await
    })
}

/// An HTTP request: the status and the JSON body.
pub fn call(p: &PeerAddr, method: &str, path: &str) -> (u16, Value) {
    let (s, b) = http_call(&http_of(p), method, path, Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (s, serde_json::from_str(&b).unwrap_or_else(|e| panic!("{method} {path}: {e}: {b}")))
}

pub fn status(p: &PeerAddr) -> Value {
    match http_call(&http_of(p), "GET", "/status", Duration::from_secs(2)) {
        Ok((_, b)) => serde_json::from_str(&b).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// The leader among `alive` once it is ready, waiting up to 30 s.
pub fn leader(peers: &BTreeMap<u64, PeerAddr>, alive: &[u64]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for &id in alive {
            let s = status(&peers[&id]);
            if s["state"] == "leader" && s["ready"] == true {
                return id;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader among {alive:?} within 30 s");
}

/// `mntr`'s value of `key` on the server at client port `port`.
pub fn mntr(port: u16, key: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"mntr").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}\t")).map(str::to_string))
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,keeperkit_server=info"))
        .with_test_writer()
        .try_init();
}

/// A single-node server on its own runtime thread.
pub struct TestServer {
    pub addr: SocketAddr,
    server: Option<ServerThread>,
    pub dir: PathBuf,
}

impl TestServer {
    pub fn start(dir: &Path, port: u16, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::start_on(keeperkit_vfs::std_fs(), dir, port, tweak)
    }

    /// A server on the file system `fs` (a fault-injecting one, say).
    pub fn start_on(
        fs: std::sync::Arc<dyn keeperkit_vfs::FileSystem>,
        dir: &Path,
        port: u16,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut cfg = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            tick_time_ms: 100,
            min_session_timeout_ms: Some(400),
            max_session_timeout_ms: Some(10_000),
            four_letter_words: vec!["*".into()],
            ..Default::default()
        };
        tweak(&mut cfg);
        let server =
            ServerThread::spawn(dir, move |d| async move { Server::start(fs, &d, cfg).await });
        TestServer { addr: server.addr, server: Some(server), dir: dir.to_path_buf() }
    }

    pub fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }

    /// A four-letter word's answer.
    pub fn word(&self, w: &str) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(w.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

pub struct Client {
    pub s: TcpStream,
    fb: FrameBuffer,
    xid: i32,
    pending: HashMap<i32, i32>,
    pub events: Vec<(i64, WatcherEvent)>,
    pub conn: ConnectResponse,
}

pub type Res = Result<Response, ErrorCode>;

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::resume(addr, 0, vec![0; 16], 5000).unwrap()
    }

    pub fn resume(
        addr: SocketAddr,
        session: i64,
        passwd: Vec<u8>,
        timeout_ms: i32,
    ) -> Result<Client, ConnectResponse> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: session,
            passwd,
            read_only: Some(false),
        };
        s.write_all(&encode_connect(&req)).unwrap();
        let mut c = Client {
            s,
            fb: FrameBuffer::new(DEFAULT_MAX_FRAME),
            xid: 0,
            pending: HashMap::new(),
            events: Vec::new(),
            conn: ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: vec![],
                read_only: None,
            },
        };
        let f = c.frame().expect("a connect response");
        let resp = ConnectResponse::decode(&f, DEFAULT_MAX_FRAME).unwrap();
        if resp.session_id == 0 {
            return Err(resp);
        }
        c.conn = resp;
        Ok(c)
    }

    /// The next frame, `None` at EOF.
    pub fn frame(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(f) = self.fb.next_frame().unwrap() {
                return Some(f);
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.fb.extend(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    pub fn send(&mut self, req: &Request) -> i32 {
        self.xid += 1;
        self.pending.insert(self.xid, req.op());
        self.s.write_all(&encode_request(self.xid, req)).unwrap();
        self.xid
    }

    /// The next reply (events before it are kept in `events`).
    pub fn reply(&mut self) -> (ReplyHeader, Res) {
        loop {
            let f = self.frame().expect("a reply");
            let pending = &self.pending;
            match decode_reply(&f, DEFAULT_MAX_FRAME, |x| pending.get(&x).copied()).unwrap() {
                Reply::Event(h, e) => self.events.push((h.zxid, e)),
                Reply::Response(h, body) => {
                    self.pending.remove(&h.xid);
                    let r = if h.err == 0 {
                        Ok(body.unwrap())
                    } else {
                        Err(ErrorCode::from_i32(h.err))
                    };
                    return (h, r);
                }
            }
        }
    }

    /// A request whose connection may be closed under it: `None` when it was (the
    /// outcome of the request is unknown).
    pub fn try_call(&mut self, req: Request) -> Option<Res> {
        self.xid += 1;
        self.pending.insert(self.xid, req.op());
        self.s.write_all(&encode_request(self.xid, &req)).ok()?;
        loop {
            let f = self.frame()?;
            let pending = &self.pending;
            match decode_reply(&f, DEFAULT_MAX_FRAME, |x| pending.get(&x).copied()).unwrap() {
                Reply::Event(h, e) => self.events.push((h.zxid, e)),
                Reply::Response(h, body) => {
                    assert_eq!(h.xid, self.xid, "replies come in request order");
                    self.pending.remove(&h.xid);
                    return Some(if h.err == 0 {
                        Ok(body.unwrap())
                    } else {
                        Err(ErrorCode::from_i32(h.err))
                    });
                }
            }
        }
    }

    pub fn call(&mut self, req: Request) -> Res {
        let x = self.send(&req);
        let (h, r) = self.reply();
        assert_eq!(h.xid, x, "replies come in request order");
        r
    }

    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Res {
        self.call(Request::Create(CreateRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags,
            ttl: None,
        }))
    }

    pub fn get(&mut self, path: &str, watch: bool) -> Res {
        self.call(Request::GetData { path: path.into(), watch })
    }

    pub fn set(&mut self, path: &str, data: &[u8], version: i32) -> Res {
        self.call(Request::SetData { path: path.into(), data: Some(data.to_vec()), version })
    }

    pub fn delete(&mut self, path: &str, version: i32) -> Res {
        self.call(Request::Delete { path: path.into(), version })
    }

    pub fn close(mut self) {
        assert_eq!(self.call(Request::CloseSession), Ok(Response::Empty));
        assert!(self.frame().is_none(), "the server closes the connection after closeSession");
    }
}

pub fn create_req(path: &str, data: &[u8], flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: None,
    }
}
