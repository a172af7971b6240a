//! A small asynchronous ZooKeeper client on the [`proto`](crate::proto) codec: one
//! session over one TCP connection, requests pipelined in order.
//!
//! ZooKeeper answers the requests of a session in the order it received them, so the
//! client keeps the opcodes of the requests in flight in a queue and decodes each
//! reply with the opcode at its head. Watch notifications can arrive between replies;
//! they are kept (up to [`MAX_BUFFERED_EVENTS`], then counted as dropped) for
//! [`Client::take_events`].
//!
//! It is what `keeperkit bench server` drives; it holds no reconnect logic: a lost
//! connection is an error the caller sees.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::{
    self, xid, ConnectRequest, ConnectResponse, FrameBuffer, ProtoError, Reply, ReplyHeader,
    Request, Response, WatcherEvent, PASSWORD_LEN,
};

/// Watch events kept before further ones are only counted.
pub const MAX_BUFFERED_EVENTS: usize = 10_000;

/// What can go wrong on a client connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket error.
    #[error("{what} {addr}: {err}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The server address.
        addr: String,
        /// The error.
        err: std::io::Error,
    },
    /// The server sent bytes the codec refuses.
    #[error("{addr}: bad frame from the server: {err}")]
    Proto {
        /// The server address.
        addr: String,
        /// The error.
        err: ProtoError,
    },
    /// The server closed the connection.
    #[error("{addr}: the server closed the connection{}", if *.outstanding > 0 { format!(" with {} requests unanswered", .outstanding) } else { String::new() })]
    Closed {
        /// The server address.
        addr: String,
        /// Requests that were in flight.
        outstanding: usize,
    },
    /// The server refused the session (expired, or a wrong password).
    #[error("{addr}: the server refused the session (connect answered with timeout 0)")]
    SessionRefused {
        /// The server address.
        addr: String,
    },
    /// No answer in time.
    #[error("{addr}: no answer within {timeout:?} ({what})")]
    Timeout {
        /// The server address.
        addr: String,
        /// What was awaited.
        what: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A reply whose xid is not the one expected (the server broke the order).
    #[error("{addr}: reply with xid {got}, expected {want}")]
    OutOfOrder {
        /// The server address.
        addr: String,
        /// The xid received.
        got: i32,
        /// The xid expected.
        want: i32,
    },
    /// [`Client::recv`] with nothing in flight.
    #[error("no request is in flight")]
    NothingInFlight,
}

/// Result type of the client.
pub type Result<T> = std::result::Result<T, ClientError>;

/// How to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Requested session timeout in ms (the server negotiates it).
    pub session_timeout_ms: i32,
    /// Limit for the connect and for each reply.
    pub op_timeout: Duration,
    /// Largest frame accepted from the server (`jute.maxbuffer`).
    pub max_frame: usize,
    /// Resume this session (id, password) instead of creating one.
    pub resume: Option<(i64, Vec<u8>)>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            session_timeout_ms: 30_000,
            op_timeout: Duration::from_secs(30),
            max_frame: proto::DEFAULT_MAX_FRAME,
            resume: None,
        }
    }
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The reply header (xid, zxid, error code).
    pub header: ReplyHeader,
    /// The body (`None` when the error code is not 0).
    pub body: Option<Response>,
}

/// A session over one connection.
#[derive(Debug)]
pub struct Client {
    addr: String,
    stream: TcpStream,
    frames: FrameBuffer,
    read_buf: Vec<u8>,
    next_xid: i32,
    in_flight: VecDeque<(i32, i32)>,
    session_id: i64,
    passwd: Vec<u8>,
    timeout_ms: i32,
    last_zxid: i64,
    op_timeout: Duration,
    max_frame: usize,
    events: Vec<(ReplyHeader, WatcherEvent)>,
    events_dropped: u64,
}

impl Client {
    /// Connects to `addr` (`host:port`) and opens (or resumes) a session.
    pub async fn connect(addr: &str, opts: &ConnectOptions) -> Result<Client> {
        let io = |what| move |err| ClientError::Io { what, addr: addr.to_string(), err };
        let stream = tokio::time::timeout(opts.op_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
                what: "TCP connect",
                timeout: opts.op_timeout,
            })?
            .map_err(io("connecting to"))?;
        stream.set_nodelay(true).map_err(io("TCP_NODELAY on"))?;
        let (session_id, passwd) =
            opts.resume.clone().unwrap_or_else(|| (0, vec![0; PASSWORD_LEN]));
        let mut c = Client {
            addr: addr.to_string(),
            stream,
            frames: FrameBuffer::new(opts.max_frame),
            read_buf: vec![0; 64 * 1024],
            next_xid: 1,
            in_flight: VecDeque::new(),
            session_id: 0,
            passwd: Vec::new(),
            timeout_ms: 0,
            last_zxid: 0,
            op_timeout: opts.op_timeout,
            max_frame: opts.max_frame,
            events: Vec::new(),
            events_dropped: 0,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: opts.session_timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        };
        c.write(&proto::encode_connect(&req)).await?;
        let payload = c.read_frame("the connect response").await?;
        let resp = ConnectResponse::decode(&payload, c.max_frame)
            .map_err(|err| ClientError::Proto { addr: c.addr.clone(), err })?;
        if resp.timeout_ms <= 0 || resp.session_id == 0 {
            return Err(ClientError::SessionRefused { addr: c.addr.clone() });
        }
        c.session_id = resp.session_id;
        c.passwd = resp.passwd;
        c.timeout_ms = resp.timeout_ms;
        Ok(c)
    }

    /// The session id the server gave.
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The session password (to resume the session on another connection).
    pub fn password(&self) -> &[u8] {
        &self.passwd
    }

    /// The negotiated session timeout in ms.
    pub fn session_timeout_ms(&self) -> i32 {
        self.timeout_ms
    }

    /// The highest zxid seen in a reply.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Watch events received so far (and how many were dropped beyond the buffer).
    pub fn take_events(&mut self) -> (Vec<(ReplyHeader, WatcherEvent)>, u64) {
        (std::mem::take(&mut self.events), std::mem::take(&mut self.events_dropped))
    }

    /// Sends a request without waiting for its answer; returns its xid.
    pub async fn send(&mut self, req: &Request) -> Result<i32> {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        self.send_with_xid(x, req).await?;
        Ok(x)
    }

    async fn send_with_xid(&mut self, x: i32, req: &Request) -> Result<()> {
        self.write(&proto::encode_request(x, req)).await?;
        self.in_flight.push_back((x, req.op()));
        Ok(())
    }

    /// The answer to the oldest request in flight (events that come first are kept).
    pub async fn recv(&mut self) -> Result<Answer> {
        let Some(&(want, op)) = self.in_flight.front() else {
            return Err(ClientError::NothingInFlight);
        };
        loop {
            let payload = self.read_frame("a reply").await?;
            let reply = proto::decode_reply(&payload, self.max_frame, |_| Some(op))
                .map_err(|err| ClientError::Proto { addr: self.addr.clone(), err })?;
            match reply {
                Reply::Event(h, ev) => {
                    if self.events.len() < MAX_BUFFERED_EVENTS {
                        self.events.push((h, ev));
                    } else {
                        self.events_dropped += 1;
                    }
                }
                Reply::Response(header, body) => {
                    if header.xid != want {
                        return Err(ClientError::OutOfOrder {
                            addr: self.addr.clone(),
                            got: header.xid,
                            want,
                        });
                    }
                    self.in_flight.pop_front();
                    if header.zxid > self.last_zxid && header.xid != xid::PING {
                        self.last_zxid = header.zxid;
                    }
                    return Ok(Answer { header, body });
                }
            }
        }
    }

    /// Sends a request and waits for its answer (after those of earlier requests,
    /// which are discarded).
    pub async fn call(&mut self, req: &Request) -> Result<Answer> {
        let x = self.send(req).await?;
        loop {
            let a = self.recv().await?;
            if a.header.xid == x {
                return Ok(a);
            }
        }
    }

    /// A ping, answered.
    pub async fn ping(&mut self) -> Result<()> {
        self.send_with_xid(xid::PING, &Request::Ping).await?;
        loop {
            if self.recv().await?.header.xid == xid::PING {
                return Ok(());
            }
        }
    }

    /// Ends the session (closeSession, answered) and the connection.
    pub async fn close(mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.recv().await?;
        }
        self.send(&Request::CloseSession).await?;
        match self.recv().await {
            Ok(_) | Err(ClientError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let addr = &self.addr;
        match tokio::time::timeout(self.op_timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ClientError::Io { what: "writing to", addr: addr.clone(), err }),
            Err(_) => Err(ClientError::Timeout {
                addr: addr.clone(),
                what: "a write",
                timeout: self.op_timeout,
            }),
        }
    }

    async fn read_frame(&mut self, what: &'static str) -> Result<Vec<u8>> {
        loop {
            match self.frames.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(err) => return Err(ClientError::Proto { addr: self.addr.clone(), err }),
            }
            let n =
                match tokio::time::timeout(self.op_timeout, self.stream.read(&mut self.read_buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    Ok(Err(err)) => {
                        return Err(ClientError::Io {
                            what: "reading from",
                            addr: self.addr.clone(),
                            err,
                        })
                    }
                    Err(_) => {
                        return Err(ClientError::Timeout {
                            addr: self.addr.clone(),
                            what,
                            timeout: self.op_timeout,
                        })
                    }
                };
            if n == 0 {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                    outstanding: self.in_flight.len(),
                });
            }
            self.frames.extend(&self.read_buf[..n]);
        }
    }
}
