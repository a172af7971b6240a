//! A small blocking ZooKeeper client over the codec, and an in-process server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use keeperkit_model::{Acl, ErrorCode};
use keeperkit_server::proto::{
    decode_reply, encode_connect, encode_request, ConnectRequest, ConnectResponse, CreateRequest,
    FrameBuffer, Reply, ReplyHeader, Request, Response, WatcherEvent, DEFAULT_MAX_FRAME,
};
use keeperkit_server::{Server, ServerConfig};

/// A server on its own runtime thread.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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
                let s = Server::start(fs, &d, cfg).await.unwrap();
                atx.send(s.local_addr()).unwrap();
                s.serve(async {
                    let _ = srx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = arx.recv_timeout(Duration::from_secs(30)).expect("the server started");
        TestServer { addr, stop: Some(stx), thread: Some(thread), dir: dir.to_path_buf() }
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
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
