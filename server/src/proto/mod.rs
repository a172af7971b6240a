//! The ZooKeeper client protocol (3.8) on the wire, for both ends of a connection.
//!
//! A connection carries frames: a 4-byte big-endian length, then that many bytes of
//! jute. The first frame from a client is a [`ConnectRequest`] (or, instead of a
//! length, one of the four-letter words such as `ruok`); the server answers with a
//! [`ConnectResponse`]. After that every client frame is a [`RequestHeader`] (xid,
//! opcode) followed by the body of that opcode ([`Request`]), and every server frame
//! is a [`ReplyHeader`] (xid, zxid, error) followed, when the error is 0, by the body
//! of the response ([`Response`], decoded knowing the opcode of the request it
//! answers). Watch notifications are server frames with xid −1 whose body is a
//! [`WatcherEvent`].
//!
//! Every decoder takes hostile bytes: lengths are checked against the frame limit
//! (`jute.maxbuffer`) and against the bytes that remain before anything is
//! allocated, unknown opcodes are typed errors, and nothing panics. Encoders and
//! decoders are exact inverses on everything they produce (fuzzed: `server_request`).
//!
//! The API is symmetric so that the same module serves the server (decode requests,
//! encode responses) and a client or load generator (encode requests, decode
//! responses): see [`encode_request`], [`decode_request`], [`encode_reply`],
//! [`decode_reply`] and [`FrameBuffer`].

mod request;
mod response;

pub use request::{CreateRequest, Request};
pub use response::{ClientInfo, OpResult, Response};

use keeperkit_model::jute::{Reader, Writer};
use keeperkit_model::{DecodeError, ErrorCode};

/// ZooKeeper's default `jute.maxbuffer`: the largest frame a server accepts.
pub const DEFAULT_MAX_FRAME: usize = keeperkit_model::limits::JUTE_MAXBUFFER_DEFAULT;

/// Length of a session password.
pub const PASSWORD_LEN: usize = 16;

/// Opcodes (`ZooDefs.OpCode`, and ClickHouse Keeper's extensions from 500 on).
pub mod op {
    /// Watch notification (never a request).
    pub const NOTIFICATION: i32 = 0;
    /// create.
    pub const CREATE: i32 = 1;
    /// delete.
    pub const DELETE: i32 = 2;
    /// exists.
    pub const EXISTS: i32 = 3;
    /// getData.
    pub const GET_DATA: i32 = 4;
    /// setData.
    pub const SET_DATA: i32 = 5;
    /// getACL.
    pub const GET_ACL: i32 = 6;
    /// setACL.
    pub const SET_ACL: i32 = 7;
    /// getChildren.
    pub const GET_CHILDREN: i32 = 8;
    /// sync.
    pub const SYNC: i32 = 9;
    /// ping.
    pub const PING: i32 = 11;
    /// getChildren2.
    pub const GET_CHILDREN2: i32 = 12;
    /// check (version check, in a multi).
    pub const CHECK: i32 = 13;
    /// multi.
    pub const MULTI: i32 = 14;
    /// create2.
    pub const CREATE2: i32 = 15;
    /// reconfig.
    pub const RECONFIG: i32 = 16;
    /// checkWatches.
    pub const CHECK_WATCHES: i32 = 17;
    /// removeWatches.
    pub const REMOVE_WATCHES: i32 = 18;
    /// createContainer.
    pub const CREATE_CONTAINER: i32 = 19;
    /// deleteContainer (server internal).
    pub const DELETE_CONTAINER: i32 = 20;
    /// createTTL.
    pub const CREATE_TTL: i32 = 21;
    /// multiRead.
    pub const MULTI_READ: i32 = 22;
    /// setAuth (addAuth).
    pub const AUTH: i32 = 100;
    /// setWatches.
    pub const SET_WATCHES: i32 = 101;
    /// sasl.
    pub const SASL: i32 = 102;
    /// getEphemerals.
    pub const GET_EPHEMERALS: i32 = 103;
    /// getAllChildrenNumber.
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    /// setWatches2.
    pub const SET_WATCHES2: i32 = 105;
    /// addWatch.
    pub const ADD_WATCH: i32 = 106;
    /// whoAmI.
    pub const WHO_AM_I: i32 = 107;
    /// createSession (txn only).
    pub const CREATE_SESSION: i32 = -10;
    /// closeSession.
    pub const CLOSE_SESSION: i32 = -11;
    /// error (multi result / txn).
    pub const ERROR: i32 = -1;
    /// ClickHouse Keeper: list children filtered by kind.
    pub const FILTERED_LIST: i32 = 500;
    /// ClickHouse Keeper: check that a node does not exist.
    pub const CHECK_NOT_EXISTS: i32 = 501;
    /// ClickHouse Keeper: create unless it exists.
    pub const CREATE_IF_NOT_EXISTS: i32 = 502;
    /// ClickHouse Keeper: remove a subtree.
    pub const REMOVE_RECURSIVE: i32 = 503;

    /// The name `cons` shows for the last operation of a connection (`lop`), as
    /// ZooKeeper's `FinalRequestProcessor` sets it: `NA` for a request that failed
    /// its checks (an error txn: a write answered with an error code, `err`) and for
    /// opcodes it does not know.
    pub fn short_name(op: i32, err: i32) -> &'static str {
        let write = matches!(
            op,
            CREATE
                | CREATE2
                | CREATE_TTL
                | CREATE_CONTAINER
                | DELETE
                | DELETE_CONTAINER
                | SET_DATA
                | SET_ACL
                | CHECK
                | RECONFIG
        );
        if write && err != 0 {
            return "NA";
        }
        match op {
            PING => "PING",
            CREATE_SESSION => "SESS",
            MULTI => "MULT",
            MULTI_READ => "MLTR",
            CREATE | CREATE2 | CREATE_TTL | CREATE_CONTAINER => "CREA",
            DELETE | DELETE_CONTAINER => "DELE",
            SET_DATA => "SETD",
            RECONFIG => "RECO",
            SET_ACL => "SETA",
            CLOSE_SESSION => "CLOS",
            SYNC => "SYNC",
            CHECK => "CHEC",
            EXISTS => "EXIS",
            GET_DATA => "GETD",
            SET_WATCHES => "SETW",
            SET_WATCHES2 => "STW2",
            ADD_WATCH => "ADDW",
            GET_ACL => "GETA",
            GET_CHILDREN | GET_CHILDREN2 => "GETC",
            GET_ALL_CHILDREN_NUMBER => "GETACN",
            CHECK_WATCHES => "CHKW",
            REMOVE_WATCHES => "REMW",
            GET_EPHEMERALS => "GETE",
            WHO_AM_I => "HOMI",
            _ => "NA",
        }
    }

    /// ZooKeeper's name of an opcode (as `Request.op2String` prints it).
    pub fn name(op: i32) -> &'static str {
        match op {
            NOTIFICATION => "notification",
            CREATE => "create",
            DELETE => "delete",
            EXISTS => "exists",
            GET_DATA => "getData",
            SET_DATA => "setData",
            GET_ACL => "getACL",
            SET_ACL => "setACL",
            GET_CHILDREN => "getChildren",
            SYNC => "sync",
            PING => "ping",
            GET_CHILDREN2 => "getChildren2",
            CHECK => "check",
            MULTI => "multi",
            CREATE2 => "create2",
            RECONFIG => "reconfig",
            CHECK_WATCHES => "checkWatches",
            REMOVE_WATCHES => "removeWatches",
            CREATE_CONTAINER => "createContainer",
            DELETE_CONTAINER => "deleteContainer",
            CREATE_TTL => "createTtl",
            MULTI_READ => "multiRead",
            AUTH => "auth",
            SET_WATCHES => "setWatches",
            SASL => "sasl",
            GET_EPHEMERALS => "getEphemerals",
            GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
            SET_WATCHES2 => "setWatches2",
            ADD_WATCH => "addWatch",
            WHO_AM_I => "whoAmI",
            CREATE_SESSION => "createSession",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            FILTERED_LIST => "filteredList",
            CHECK_NOT_EXISTS => "checkNotExists",
            CREATE_IF_NOT_EXISTS => "createIfNotExists",
            REMOVE_RECURSIVE => "removeRecursive",
            _ => "unknown",
        }
    }
}

/// Special xids (`ClientCnxn`).
pub mod xid {
    /// A watch notification.
    pub const NOTIFICATION: i32 = -1;
    /// A ping.
    pub const PING: i32 = -2;
    /// An auth packet.
    pub const AUTH: i32 = -4;
    /// setWatches (after a reconnect).
    pub const SET_WATCHES: i32 = -8;
}

/// Create flags (`CreateMode.toFlag`).
pub mod create_mode {
    /// Persistent.
    pub const PERSISTENT: i32 = 0;
    /// Ephemeral.
    pub const EPHEMERAL: i32 = 1;
    /// Persistent sequential.
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    /// Ephemeral sequential.
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
    /// Container.
    pub const CONTAINER: i32 = 4;
    /// Persistent with TTL.
    pub const PERSISTENT_WITH_TTL: i32 = 5;
    /// Persistent sequential with TTL.
    pub const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;
}

/// Watch event types (`Watcher.Event.EventType`).
pub mod event_type {
    /// No node event (connection state change).
    pub const NONE: i32 = -1;
    /// Node created.
    pub const NODE_CREATED: i32 = 1;
    /// Node deleted.
    pub const NODE_DELETED: i32 = 2;
    /// Node data changed.
    pub const NODE_DATA_CHANGED: i32 = 3;
    /// Children changed.
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// A data watch was removed.
    pub const DATA_WATCH_REMOVED: i32 = 5;
    /// A child watch was removed.
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    /// A persistent watch was removed.
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

/// Keeper states carried by watch events (`Watcher.Event.KeeperState`).
pub mod keeper_state {
    /// Connected.
    pub const SYNC_CONNECTED: i32 = 3;
    /// The session expired.
    pub const EXPIRED: i32 = -112;
    /// Closed.
    pub const CLOSED: i32 = 7;
}

/// Watcher types of removeWatches / checkWatches (`Watcher.WatcherType`).
pub mod watcher_type {
    /// Child watches.
    pub const CHILDREN: i32 = 1;
    /// Data (and exists) watches.
    pub const DATA: i32 = 2;
    /// Any.
    pub const ANY: i32 = 3;
}

/// addWatch modes (`AddWatchMode`).
pub mod add_watch_mode {
    /// Persistent.
    pub const PERSISTENT: i32 = 0;
    /// Persistent and recursive.
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// What is wrong with a frame or a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A frame length is negative or larger than the limit.
    #[error("frame length {len} out of range (0..={max})")]
    FrameLength {
        /// The length announced.
        len: i64,
        /// The limit (`jute.maxbuffer`).
        max: usize,
    },
    /// A record could not be decoded.
    #[error("{what}: {err}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Where and why.
        err: DecodeError,
    },
    /// An opcode this protocol does not have.
    #[error("unknown opcode {0}")]
    UnknownOp(i32),
    /// An opcode not allowed inside a multi / multiRead.
    #[error("opcode {op} ({}) is not allowed inside {}", op::name(*op), op::name(*outer))]
    NotInMulti {
        /// The sub-op.
        op: i32,
        /// The multi opcode.
        outer: i32,
    },
}

impl ProtoError {
    pub(crate) fn decode(what: &'static str) -> impl FnOnce(DecodeError) -> ProtoError {
        move |err| ProtoError::Decode { what, err }
    }
}

/// Result type of the codec.
pub type Result<T> = std::result::Result<T, ProtoError>;

/// The first request of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// The last zxid the client saw.
    pub last_zxid_seen: i64,
    /// Requested session timeout, ms.
    pub timeout_ms: i32,
    /// 0 for a new session, else the session to resume.
    pub session_id: i64,
    /// The session password (16 bytes; zeros for a new session).
    pub passwd: Vec<u8>,
    /// The read-only flag; `None` when an old client did not send it.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// Encodes the record (without the frame length).
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.protocol_version);
        w.i64(self.last_zxid_seen);
        w.i32(self.timeout_ms);
        w.i64(self.session_id);
        w.buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }

    /// Decodes the record from a frame's payload.
    pub fn decode(payload: &[u8], max: usize) -> Result<ConnectRequest> {
        let mut r = Reader::with_len_max(payload, max);
        let e = ProtoError::decode;
        let protocol_version = r.i32().map_err(e("connect request"))?;
        let last_zxid_seen = r.i64().map_err(e("connect request"))?;
        let timeout_ms = r.i32().map_err(e("connect request"))?;
        let session_id = r.i64().map_err(e("connect request"))?;
        let passwd = r.buffer().map_err(e("connect password"))?.unwrap_or_default().to_vec();
        let read_only = if r.is_empty() { None } else { Some(r.bool().map_err(e("read-only"))?) };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// The server's answer to a [`ConnectRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// Negotiated session timeout, ms (0: the session is expired or invalid).
    pub timeout_ms: i32,
    /// The session id (0: expired).
    pub session_id: i64,
    /// The session password.
    pub passwd: Vec<u8>,
    /// Whether the server is read-only; `None` when not sent.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// Encodes the record (without the frame length).
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.protocol_version);
        w.i32(self.timeout_ms);
        w.i64(self.session_id);
        w.buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }

    /// Decodes the record from a frame's payload.
    pub fn decode(payload: &[u8], max: usize) -> Result<ConnectResponse> {
        let mut r = Reader::with_len_max(payload, max);
        let e = ProtoError::decode;
        let protocol_version = r.i32().map_err(e("connect response"))?;
        let timeout_ms = r.i32().map_err(e("connect response"))?;
        let session_id = r.i64().map_err(e("connect response"))?;
        let passwd = r.buffer().map_err(e("connect password"))?.unwrap_or_default().to_vec();
        let read_only = if r.is_empty() { None } else { Some(r.bool().map_err(e("read-only"))?) };
        Ok(ConnectResponse { protocol_version, timeout_ms, session_id, passwd, read_only })
    }
}

/// The header of every request after the connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The client's request id (or a special [`xid`]).
    pub xid: i32,
    /// The opcode.
    pub op: i32,
}

/// The header of every server frame after the connect response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// The xid of the request answered ([`xid::NOTIFICATION`] for an event).
    pub xid: i32,
    /// The server's last processed zxid when it answered (the event's zxid for a
    /// notification).
    pub zxid: i64,
    /// The error code (0: ok, and a body follows).
    pub err: i32,
}

impl ReplyHeader {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// Encodes the header.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.xid);
        w.i64(self.zxid);
        w.i32(self.err);
    }

    /// Decodes the header.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<ReplyHeader> {
        let e = ProtoError::decode("reply header");
        let mut f = || -> std::result::Result<ReplyHeader, DecodeError> {
            Ok(ReplyHeader { xid: r.i32()?, zxid: r.i64()?, err: r.i32()? })
        };
        f().map_err(e)
    }

    /// The error code.
    pub fn error(&self) -> ErrorCode {
        ErrorCode::from_i32(self.err)
    }
}

/// A watch notification's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    /// The event type ([`event_type`]).
    pub event_type: i32,
    /// The keeper state ([`keeper_state`]).
    pub state: i32,
    /// The path (client chroot not applied).
    pub path: String,
}

impl WatcherEvent {
    /// Encodes the body.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.event_type);
        w.i32(self.state);
        w.ustring(Some(&self.path));
    }

    /// Decodes the body.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<WatcherEvent> {
        let e = ProtoError::decode;
        let event_type = r.i32().map_err(e("watcher event"))?;
        let state = r.i32().map_err(e("watcher event"))?;
        let path = r.ustring().map_err(e("watcher event path"))?.unwrap_or_default();
        Ok(WatcherEvent { event_type, state, path })
    }
}

/// Prefixes `payload` with its 4-byte big-endian length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&frame_len(payload.len()).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn frame_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A framed request (header + body), as a client sends it.
pub fn encode_request(xid: i32, req: &Request) -> Vec<u8> {
    let mut w = Writer::from_vec(vec![0; 4]);
    w.i32(xid);
    w.i32(req.op());
    req.encode_body(&mut w);
    finish_frame(w)
}

/// Fills in the length prefix of a writer that started with 4 placeholder bytes.
pub(crate) fn finish_frame(w: Writer) -> Vec<u8> {
    let mut v = w.into_inner();
    let n = frame_len(v.len() - 4);
    v[..4].copy_from_slice(&n.to_be_bytes());
    v
}

/// A framed connect request.
pub fn encode_connect(req: &ConnectRequest) -> Vec<u8> {
    let mut w = Writer::from_vec(vec![0; 4]);
    req.encode_into(&mut w);
    finish_frame(w)
}

/// A framed connect response.
pub fn encode_connect_response(resp: &ConnectResponse) -> Vec<u8> {
    let mut w = Writer::from_vec(vec![0; 4]);
    resp.encode_into(&mut w);
    finish_frame(w)
}

/// Decodes a request frame's payload (header and body). The header is returned even
/// when the body fails, so that a server can answer the xid.
pub fn decode_request(
    payload: &[u8],
    max: usize,
) -> std::result::Result<(RequestHeader, Request), (Option<RequestHeader>, ProtoError)> {
    let mut r = Reader::with_len_max(payload, max);
    let hdr = match (r.i32(), r.i32()) {
        (Ok(xid), Ok(op)) => RequestHeader { xid, op },
        (Err(err), _) | (_, Err(err)) => {
            return Err((None, ProtoError::Decode { what: "request header", err }))
        }
    };
    match Request::decode_body(hdr.op, &mut r) {
        Ok(req) => Ok((hdr, req)),
        Err(e) => Err((Some(hdr), e)),
    }
}

/// A framed reply: header, then the body when there is one.
pub fn encode_reply(hdr: ReplyHeader, body: Option<&Response>) -> Vec<u8> {
    // Sized for the frame length, the header, a stat and a node's data: no regrowth
    // (and copy) of a getData reply while it is written.
    let data = match body {
        Some(Response::GetData { data: Some(d), .. }) => d.len(),
        _ => 0,
    };
    let mut v = Vec::with_capacity(128 + data);
    v.extend_from_slice(&[0; 4]);
    let mut w = Writer::from_vec(v);
    hdr.encode_into(&mut w);
    if let Some(b) = body {
        b.encode_into(&mut w);
    }
    finish_frame(w)
}

/// A framed watch notification.
pub fn encode_event(zxid: i64, ev: &WatcherEvent) -> Vec<u8> {
    let mut w = Writer::from_vec(vec![0; 4]);
    ReplyHeader { xid: xid::NOTIFICATION, zxid, err: 0 }.encode_into(&mut w);
    ev.encode_into(&mut w);
    finish_frame(w)
}

/// What a server frame holds, decoded on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A watch notification.
    Event(ReplyHeader, WatcherEvent),
    /// The answer to a request: its body (`None` when the error is not 0;
    /// [`Response::Empty`] for requests answered without a body).
    Response(ReplyHeader, Option<Response>),
}

/// Decodes a server frame's payload. `op_of` gives the opcode of the request with a
/// given xid (the client remembers it); notifications need none.
pub fn decode_reply(
    payload: &[u8],
    max: usize,
    op_of: impl FnOnce(i32) -> Option<i32>,
) -> Result<Reply> {
    let mut r = Reader::with_len_max(payload, max);
    let hdr = ReplyHeader::decode_from(&mut r)?;
    if hdr.xid == xid::NOTIFICATION {
        return Ok(Reply::Event(hdr, WatcherEvent::decode_from(&mut r)?));
    }
    let op = match hdr.xid {
        xid::PING => op::PING,
        xid::AUTH => op::AUTH,
        xid::SET_WATCHES => op::SET_WATCHES,
        x => op_of(x).ok_or_else(|| ProtoError::Decode {
            what: "reply",
            err: r.invalid(format!("no request with xid {x} is outstanding")),
        })?,
    };
    if hdr.err != 0 {
        return Ok(Reply::Response(hdr, None));
    }
    Ok(Reply::Response(hdr, Some(Response::decode(op, &mut r)?)))
}

/// Accumulates bytes from a stream and cuts them into frames.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl FrameBuffer {
    /// A buffer accepting frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameBuffer {
        FrameBuffer { buf: Vec::new(), start: 0, max }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The first 4 buffered bytes, if that many arrived (to recognise a four-letter
    /// word before treating them as a length).
    pub fn peek4(&self) -> Option<[u8; 4]> {
        let b = self.buf.get(self.start..self.start + 4)?;
        let mut out = [0u8; 4];
        out.copy_from_slice(b);
        Some(out)
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed, an
    /// error for a length out of range.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(len) = self.peek4() else { return Ok(None) };
        let len = i32::from_be_bytes(len);
        let n = usize::try_from(len).ok().filter(|&n| n <= self.max);
        let Some(n) = n else {
            return Err(ProtoError::FrameLength { len: i64::from(len), max: self.max });
        };
        if self.pending() < 4 + n {
            return Ok(None);
        }
        let s = self.start + 4;
        let out = self.buf[s..s + n].to_vec();
        self.start = s + n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 16) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests;
