//! Raft traffic between nodes over TCP: plain tokio sockets and length-prefixed,
//! CRC-checked frames whose bodies are encoded here by hand.
//!
//! No RPC framework: openraft needs three calls (append entries, vote, install a
//! snapshot chunk) and the server one more (an opaque application call, used to
//! forward client writes to the leader). Log entries cross the wire in exactly the
//! bytes the WAL stores ([`codec::encode_payload`]), so what a follower receives is
//! decoded by the same code that reads its log back, and a node never needs serde
//! impls of the ZooKeeper types.
//!
//! # Frames
//!
//! `u32` length of what follows, `u32` CRC-32 of the body, the body (little-endian).
//! A body: `u8` kind, `u64` call id, the message. Frames above [`MAX_FRAME`] or with a
//! bad CRC close the connection. Each connection starts with a hello (cluster id, the
//! caller's node id, the node id it wants): a node answers only callers of its own
//! cluster that address it by its own id. Calls on one connection are multiplexed by
//! their id; the answer of a call is [`OK`]`|kind` with the answer's body, or [`ERR`]
//! with a text.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{self, DecodeError};
use crate::{Entry, KeeperRaft, NodeId, Raft};

/// The largest frame accepted (a snapshot chunk is far smaller).
pub const MAX_FRAME: usize = 64 << 20;

/// Hello: the first frame of a connection.
pub const HELLO: u8 = 1;
/// openraft's append-entries.
pub const APPEND: u8 = 2;
/// openraft's install-snapshot chunk.
pub const SNAPSHOT: u8 = 3;
/// openraft's vote.
pub const VOTE: u8 = 4;
/// An application call (its bytes are the application's).
pub const APP: u8 = 5;
/// Added to a kind in a successful answer.
pub const OK: u8 = 0x80;
/// A failed call: the body is a UTF-8 text.
pub const ERR: u8 = 0xff;
/// A refused vote request: the caller is no member of the callee's committed
/// membership, and its log holds nothing the callee has not applied (so no newer
/// membership can name it). The body is a UTF-8 text.
pub const NOT_MEMBER: u8 = 0xfe;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A boxed future, as application handlers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The application's handler of [`APP`] calls: the caller's node id and the bytes it
/// sent; the answer's bytes or a text.
pub type AppHandler =
    Arc<dyn Fn(NodeId, Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> + Send + Sync>;

/// Records a cluster id a node takes (persists it); an error refuses it.
pub type Adopt = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

type Conns = Arc<tokio::sync::Mutex<HashMap<(NodeId, String), Arc<Mux>>>>;

/// Who this node is on the wire.
pub struct Identity {
    /// This node's id.
    pub node: NodeId,
    /// The cluster id: `None` for a node that has not joined any cluster yet (it takes
    /// the id of the first cluster that calls it, through `adopt`).
    pub cluster: Mutex<Option<String>>,
    /// Records a cluster id this node takes (persists it); an error refuses it.
    pub adopt: Adopt,
    /// Set while this node may not vote: it lost (or never had) the term and vote it
    /// may have given, and is being rebuilt from the leader. Vote requests to it are
    /// answered with an error, and it sends none.
    pub no_vote: AtomicBool,
    /// Set (with the peer's word) when a peer refused this node's vote request with
    /// [`NOT_MEMBER`]: this node was removed from the cluster while it could not hear
    /// of it. The application stops it from campaigning.
    pub not_member: tokio::sync::watch::Sender<Option<String>>,
    /// Told the id of each peer whose connection to this node's Raft port ended (its
    /// process may be gone: the application can look and campaign early when that
    /// peer led).
    pub closed: Option<mpsc::UnboundedSender<NodeId>>,
}

impl Identity {
    /// Whether this node may vote now.
    pub fn votes(&self) -> bool {
        !self.no_vote.load(Ordering::SeqCst)
    }

    fn cluster(&self) -> Option<String> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks a caller's hello: its cluster and the node it wants.
    fn admit(&self, cluster: &str, to: NodeId) -> Result<(), String> {
        if to != self.node {
            return Err(format!("this is node {}, not node {to}", self.node));
        }
        let mut c = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        match c.as_deref() {
            Some(mine) if mine == cluster => Ok(()),
            Some(mine) => Err(format!("this node belongs to cluster {mine}, not {cluster}")),
            None => {
                (self.adopt)(cluster)?;
                *c = Some(cluster.to_string());
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------- encoding

/// A message being encoded.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// A `u64`.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A `u32` length and the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    fn log_id(&mut self, id: &Option<LogId<NodeId>>) {
        match id {
            None => self.u8(0),
            Some(id) => {
                self.u8(1);
                self.u64(id.leader_id.term);
                self.u64(id.index);
            }
        }
    }
    fn vote(&mut self, v: &Vote<NodeId>) {
        self.u64(v.leader_id.term);
        match v.leader_id.voted_for {
            None => self.u8(0),
            Some(n) => {
                self.u8(1);
                self.u64(n);
            }
        }
        self.u8(u8::from(v.committed));
    }
    fn membership(&mut self, m: &StoredMembership<NodeId, BasicNode>) {
        match m.log_id() {
            None => self.u8(0),
            Some(id) => {
                self.u8(1);
                self.bytes(&codec::encode_membership(id, m.membership()));
            }
        }
    }
}

/// A message being decoded: every read is bounds-checked.
pub struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `b`.
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            DecodeError(format!("message truncated at byte {} (wanted {n} more)", self.pos))
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    /// A `u32` length and the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A count of items, each at least `min` bytes long: never more than the bytes
    /// left can hold.
    pub fn count(&mut self, min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.b.len() - self.pos {
            return Err(DecodeError(format!("a count of {n} cannot fit in the message")));
        }
        Ok(n)
    }
    /// The message must end here.
    pub fn end(&self) -> Result<(), DecodeError> {
        if self.pos != self.b.len() {
            return Err(DecodeError(format!(
                "{} bytes after the end of the message",
                self.b.len() - self.pos
            )));
        }
        Ok(())
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(DecodeError(format!("bad flag {x} at byte {}", self.pos - 1))),
        }
    }
    fn log_id(&mut self) -> Result<Option<LogId<NodeId>>, DecodeError> {
        if !self.flag()? {
            return Ok(None);
        }
        let term = self.u64()?;
        let index = self.u64()?;
        Ok(Some(codec::log_id(term, index)))
    }
    fn vote(&mut self) -> Result<Vote<NodeId>, DecodeError> {
        let term = self.u64()?;
        let voted_for = if self.flag()? { Some(self.u64()?) } else { None };
        let committed = self.flag()?;
        Ok(Vote { leader_id: LeaderId { term, voted_for }, committed })
    }
    fn membership(&mut self) -> Result<StoredMembership<NodeId, BasicNode>, DecodeError> {
        if !self.flag()? {
            return Ok(StoredMembership::new(None, Membership::default()));
        }
        let (id, m) = codec::decode_membership(self.bytes()?)?;
        Ok(StoredMembership::new(id, m))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| DecodeError("a text is not UTF-8".into()))
    }
}

fn enc_append(r: &AppendEntriesRequest<KeeperRaft>) -> Vec<u8> {
    let mut w = Writer::default();
    w.vote(&r.vote);
    w.log_id(&r.prev_log_id);
    w.log_id(&r.leader_commit);
    w.0.extend_from_slice(&u32::try_from(r.entries.len()).unwrap_or(u32::MAX).to_le_bytes());
    for e in &r.entries {
        w.u64(e.log_id.leader_id.term);
        w.u64(e.log_id.index);
        w.bytes(&codec::encode_payload(e));
    }
    w.0
}

fn dec_append(b: &[u8]) -> Result<AppendEntriesRequest<KeeperRaft>, DecodeError> {
    let mut r = Reader::new(b);
    let vote = r.vote()?;
    let prev_log_id = r.log_id()?;
    let leader_commit = r.log_id()?;
    let n = r.count(20)?;
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    for _ in 0..n {
        let term = r.u64()?;
        let index = r.u64()?;
        let wal_index = index
            .checked_add(1)
            .ok_or_else(|| DecodeError(format!("entry index {index} out of range")))?;
        entries.push(codec::decode_entry(wal_index, term, r.bytes()?)?);
    }
    r.end()?;
    Ok(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
}

fn enc_append_resp(r: &AppendEntriesResponse<NodeId>) -> Vec<u8> {
    let mut w = Writer::default();
    match r {
        AppendEntriesResponse::Success => w.u8(0),
        AppendEntriesResponse::PartialSuccess(id) => {
            w.u8(1);
            w.log_id(id);
        }
        AppendEntriesResponse::Conflict => w.u8(2),
        AppendEntriesResponse::HigherVote(v) => {
            w.u8(3);
            w.vote(v);
        }
    }
    w.0
}

fn dec_append_resp(b: &[u8]) -> Result<AppendEntriesResponse<NodeId>, DecodeError> {
    let mut r = Reader::new(b);
    let v = match r.u8()? {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(r.log_id()?),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(r.vote()?),
        x => return Err(DecodeError(format!("unknown append-entries answer {x}"))),
    };
    r.end()?;
    Ok(v)
}

fn enc_vote(r: &VoteRequest<NodeId>) -> Vec<u8> {
    let mut w = Writer::default();
    w.vote(&r.vote);
    w.log_id(&r.last_log_id);
    w.0
}

fn dec_vote(b: &[u8]) -> Result<VoteRequest<NodeId>, DecodeError> {
    let mut r = Reader::new(b);
    let vote = r.vote()?;
    let last_log_id = r.log_id()?;
    r.end()?;
    Ok(VoteRequest { vote, last_log_id })
}

fn enc_vote_resp(v: &VoteResponse<NodeId>) -> Vec<u8> {
    let mut w = Writer::default();
    w.vote(&v.vote);
    w.u8(u8::from(v.vote_granted));
    w.log_id(&v.last_log_id);
    w.0
}

fn dec_vote_resp(b: &[u8]) -> Result<VoteResponse<NodeId>, DecodeError> {
    let mut r = Reader::new(b);
    let vote = r.vote()?;
    let vote_granted = r.flag()?;
    let last_log_id = r.log_id()?;
    r.end()?;
    Ok(VoteResponse { vote, vote_granted, last_log_id })
}

fn enc_snapshot(s: &InstallSnapshotRequest<KeeperRaft>) -> Vec<u8> {
    let mut w = Writer::default();
    w.vote(&s.vote);
    w.log_id(&s.meta.last_log_id);
    w.membership(&s.meta.last_membership);
    w.bytes(s.meta.snapshot_id.as_bytes());
    w.u64(s.offset);
    w.bytes(&s.data);
    w.u8(u8::from(s.done));
    w.0
}

fn dec_snapshot(b: &[u8]) -> Result<InstallSnapshotRequest<KeeperRaft>, DecodeError> {
    let mut r = Reader::new(b);
    let vote = r.vote()?;
    let last_log_id = r.log_id()?;
    let last_membership = r.membership()?;
    let snapshot_id = r.string()?;
    let offset = r.u64()?;
    let data = r.bytes()?.to_vec();
    let done = r.flag()?;
    r.end()?;
    Ok(InstallSnapshotRequest {
        vote,
        meta: SnapshotMeta { last_log_id, last_membership, snapshot_id },
        offset,
        data,
        done,
    })
}

// ---------------------------------------------------------------- frames

fn frame(kind: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 17);
    let len = u32::try_from(body.len() + 13).unwrap_or(u32::MAX);
    b.extend_from_slice(&len.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(&id.to_le_bytes());
    h.update(body);
    b.extend_from_slice(&h.finalize().to_le_bytes());
    b.push(kind);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(body);
    b
}

/// Reads one frame: (kind, call id, body). `Ok(None)` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<(u8, u64, Vec<u8>)>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..4]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[4..]).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame length {len}")));
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await?;
    if crc32fast::hash(&body) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame CRC mismatch"));
    }
    let kind = body[0];
    let mut id = [0u8; 8];
    id.copy_from_slice(&body[1..9]);
    Ok(Some((kind, u64::from_le_bytes(id), body.split_off(9))))
}

async fn writer<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(f) = rx.recv().await {
        if w.write_all(&f).await.is_err() {
            break;
        }
        while let Ok(f) = rx.try_recv() {
            if w.write_all(&f).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------- serving

/// Serves the Raft port: openraft's calls go to `raft`, [`APP`] calls to `app`.
pub async fn serve(listener: TcpListener, raft: Raft, ident: Arc<Identity>, app: AppHandler) {
    loop {
        let (s, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("raft port: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let (raft, ident, app) = (raft.clone(), ident.clone(), app.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_conn(s, raft, ident, app).await {
                tracing::debug!(%addr, "raft connection closed: {e}");
            }
        });
    }
}

async fn serve_conn(
    s: TcpStream,
    raft: Raft,
    ident: Arc<Identity>,
    app: AppHandler,
) -> Result<(), String> {
    let (mut rd, wr) = s.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(wr, rx));
    let hello = tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut rd))
        .await
        .map_err(|_| "no hello".to_string())?
        .map_err(|e| e.to_string())?
        .ok_or("closed before its hello")?;
    let from = match hello {
        (HELLO, id, body) => {
            let mut r = Reader::new(&body);
            let parsed = (|| {
                let cluster = r.string()?;
                let from = r.u64()?;
                let to = r.u64()?;
                r.end()?;
                Ok::<_, DecodeError>((cluster, from, to))
            })();
            let (cluster, from, to) = parsed.map_err(|e| format!("bad hello: {e}"))?;
            if let Err(e) = ident.admit(&cluster, to) {
                let _ = tx.send(frame(ERR, id, e.as_bytes()));
                return Err(format!("refused node {from}: {e}"));
            }
            let _ = tx.send(frame(OK | HELLO, id, &[]));
            from
        }
        (k, _, _) => return Err(format!("the first frame is of kind {k}, not a hello")),
    };
    let served = serve_calls(&mut rd, &tx, &raft, &ident, &app, from).await;
    if let Some(c) = &ident.closed {
        let _ = c.send(from);
    }
    served
}

/// Answers the calls of node `from` on its connection until it ends.
async fn serve_calls(
    rd: &mut OwnedReadHalf,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    raft: &Raft,
    ident: &Arc<Identity>,
    app: &AppHandler,
    from: NodeId,
) -> Result<(), String> {
    while let Some((kind, id, body)) = read_frame(rd).await.map_err(|e| e.to_string())? {
        let (raft, app, tx, ident) = (raft.clone(), app.clone(), tx.clone(), ident.clone());
        tokio::spawn(async move {
            let refused = if kind == VOTE { not_member(&raft, from, &body) } else { None };
            if let Some(why) = refused {
                tracing::warn!("refused a vote request of node {from}: {why}");
                let _ = tx.send(frame(NOT_MEMBER, id, why.as_bytes()));
                return;
            }
            let answer = if kind == VOTE && !ident.votes() {
                Err(format!(
                    "node {} does not vote: its Raft state is new or was lost, and it is not rebuilt yet",
                    ident.node
                ))
            } else {
                handle(&raft, &app, from, kind, body).await
            };
            let f = match answer {
                Ok(b) => frame(OK | kind, id, &b),
                Err(e) => frame(ERR, id, e.as_bytes()),
            };
            let _ = tx.send(f);
        });
    }
    Ok(())
}

/// Why a vote request of node `from` is refused as coming from a non-member, if it
/// is: this node has applied (so the cluster committed) a membership that does not
/// name `from`, and the candidate's last log id is no later than what this node has
/// applied, so its log cannot hold a newer membership naming it. (A node removed
/// while it was down campaigns with the old membership of its log; openraft alone
/// would let it raise terms forever.)
fn not_member(raft: &Raft, from: NodeId, body: &[u8]) -> Option<String> {
    let req = dec_vote(body).ok()?;
    let m = raft.metrics().borrow().clone();
    let sm = &m.membership_config;
    let at = sm.log_id().as_ref()?.index;
    let applied = m.last_applied?;
    if applied.index < at || sm.membership().get_node(&from).is_some() {
        return None;
    }
    if req.last_log_id.is_some_and(|l| l > applied) {
        return None;
    }
    let voters: Vec<String> = sm.membership().voter_ids().map(|v| v.to_string()).collect();
    Some(format!(
        "node {from} is not a member of the cluster (its committed membership at index {at} has the voters {}; node {} applied up to index {})",
        voters.join(","),
        m.id,
        applied.index
    ))
}

async fn handle(
    raft: &Raft,
    app: &AppHandler,
    from: NodeId,
    kind: u8,
    body: Vec<u8>,
) -> Result<Vec<u8>, String> {
    match kind {
        APPEND => {
            let req = dec_append(&body).map_err(|e| e.to_string())?;
            let r = raft.append_entries(req).await.map_err(|e| e.to_string())?;
            Ok(enc_append_resp(&r))
        }
        VOTE => {
            let req = dec_vote(&body).map_err(|e| e.to_string())?;
            let r = raft.vote(req).await.map_err(|e| e.to_string())?;
            Ok(enc_vote_resp(&r))
        }
        SNAPSHOT => {
            let req = dec_snapshot(&body).map_err(|e| e.to_string())?;
            let r = raft.install_snapshot(req).await.map_err(|e| e.to_string())?;
            let mut w = Writer::default();
            w.vote(&r.vote);
            Ok(w.0)
        }
        APP => app(from, body).await,
        k => Err(format!("unknown call kind {k}")),
    }
}

// ---------------------------------------------------------------- calling

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(u8, Vec<u8>)>>>>;

/// One multiplexed connection to a peer.
struct Mux {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next: AtomicU64,
    dead: Arc<AtomicBool>,
}

impl Mux {
    async fn connect(addr: &str, ident: &Identity, to: NodeId) -> io::Result<Mux> {
        let cluster = ident
            .cluster()
            .ok_or_else(|| io::Error::other("this node belongs to no cluster yet"))?;
        // A member's address may carry its client port after a `;` (`HOST:RAFT;CLIENT`).
        let dial = addr.split(';').next().unwrap_or(addr);
        let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dial)).await.map_err(
            |_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}")),
        )??;
        let _ = s.set_nodelay(true);
        let (mut rd, mut wr) = s.into_split();
        let mut w = Writer::default();
        w.bytes(cluster.as_bytes());
        w.u64(ident.node);
        w.u64(to);
        wr.write_all(&frame(HELLO, 0, &w.0)).await?;
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut rd))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to the hello"))??;
        match answer {
            Some((k, _, _)) if k == OK | HELLO => {}
            Some((ERR, _, text)) => {
                return Err(io::Error::other(format!(
                    "node {to} at {addr} refused: {}",
                    String::from_utf8_lossy(&text)
                )))
            }
            _ => return Err(io::Error::other(format!("node {to} at {addr}: bad hello answer"))),
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(wr, rx));
        let pending: Pending = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let (p, d) = (pending.clone(), dead.clone());
        tokio::spawn(async move {
            while let Ok(Some((kind, id, body))) = read_frame(&mut rd).await {
                let waiter = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send((kind, body));
                }
            }
            d.store(true, Ordering::SeqCst);
            // Every call still waiting learns the connection is gone.
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Mux { tx, pending, next: AtomicU64::new(1), dead })
    }
}

/// The connections of this node to its peers (one multiplexed connection each,
/// reopened when it breaks); openraft's network factory.
#[derive(Clone)]
pub struct Peers {
    ident: Arc<Identity>,
    conns: Conns,
}

impl Peers {
    /// The peers of the node `ident`.
    pub fn new(ident: Arc<Identity>) -> Peers {
        Peers { ident, conns: Arc::default() }
    }

    async fn mux(&self, to: NodeId, addr: &str) -> io::Result<Arc<Mux>> {
        let mut conns = self.conns.lock().await;
        let key = (to, addr.to_string());
        if let Some(m) = conns.get(&key) {
            if !m.dead.load(Ordering::SeqCst) {
                return Ok(m.clone());
            }
        }
        let m = Arc::new(Mux::connect(addr, &self.ident, to).await?);
        conns.insert(key, m.clone());
        Ok(m)
    }

    /// Calls node `to` at `addr`: the answer's body, or why there is none (a transport
    /// failure or the remote's error text).
    pub async fn call(
        &self,
        to: NodeId,
        addr: &str,
        kind: u8,
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        self.send(to, addr, kind, body).await?.answer(timeout).await
    }

    /// Sends a call to node `to` at `addr` and returns once it is queued on the
    /// connection: calls sent one after the other on a connection reach the peer in
    /// that order. [`Call::answer`] waits for its answer.
    pub async fn send(&self, to: NodeId, addr: &str, kind: u8, body: &[u8]) -> io::Result<Call> {
        let m = self.mux(to, addr).await?;
        let id = m.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        m.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        if m.dead.load(Ordering::SeqCst) || m.tx.send(frame(kind, id, body)).is_err() {
            m.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("connection to node {to} lost"),
            ));
        }
        Ok(Call { ident: self.ident.clone(), m, id, rx, kind, to })
    }
}

/// A call sent ([`Peers::send`]) and not answered yet.
pub struct Call {
    ident: Arc<Identity>,
    m: Arc<Mux>,
    id: u64,
    rx: oneshot::Receiver<(u8, Vec<u8>)>,
    kind: u8,
    to: NodeId,
}

impl Call {
    /// The answer's body, or why there is none (a transport failure, no answer within
    /// `timeout`, or the remote's error text).
    pub async fn answer(self, timeout: Duration) -> io::Result<Vec<u8>> {
        let Call { ident, m, id, rx, kind, to } = self;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok((k, b))) if k == OK | kind => Ok(b),
            Ok(Ok((NOT_MEMBER, text))) => {
                let why = String::from_utf8_lossy(&text).into_owned();
                ident.not_member.send_replace(Some(why.clone()));
                Err(io::Error::new(io::ErrorKind::PermissionDenied, why))
            }
            Ok(Ok((ERR, text))) => {
                Err(io::Error::other(String::from_utf8_lossy(&text).into_owned()))
            }
            Ok(Ok((k, _))) => Err(io::Error::other(format!("node {to} answered kind {k}"))),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("connection to node {to} lost"),
            )),
            Err(_) => {
                m.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("node {to} did not answer within {timeout:?}"),
                ))
            }
        }
    }
}

/// openraft's client of one peer.
pub struct PeerClient {
    peers: Peers,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<KeeperRaft> for Peers {
    type Network = PeerClient;
    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient { peers: self.clone(), target, addr: node.addr.clone() }
    }
}

fn unreachable<E: std::error::Error>(e: io::Error) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

impl PeerClient {
    async fn call(&self, kind: u8, body: Vec<u8>, option: &RPCOption) -> io::Result<Vec<u8>> {
        self.peers.call(self.target, &self.addr, kind, &body, option.hard_ttl()).await
    }
}

fn bad(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.0)
}

impl RaftNetwork<KeeperRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KeeperRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let b = self.call(APPEND, enc_append(&rpc), &option).await.map_err(unreachable)?;
        dec_append_resp(&b).map_err(|e| unreachable(bad(e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KeeperRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let b = self.call(SNAPSHOT, enc_snapshot(&rpc), &option).await.map_err(unreachable)?;
        let mut r = Reader::new(&b);
        let vote = r.vote().map_err(|e| unreachable(bad(e)))?;
        r.end().map_err(|e| unreachable(bad(e)))?;
        Ok(InstallSnapshotResponse { vote })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        if !self.peers.ident.votes() {
            return Err(unreachable(io::Error::other(
                "this node does not campaign: its Raft state is new or was lost, and it is not rebuilt yet",
            )));
        }
        let b = self.call(VOTE, enc_vote(&rpc), &option).await.map_err(unreachable)?;
        dec_vote_resp(&b).map_err(|e| unreachable(bad(e)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use keeperkit_model::{OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
    use openraft::EntryPayload;

    #[test]
    fn append_entries_round_trip_and_truncation_is_an_error() {
        let txn = Txn {
            header: TxnHeader {
                client_id: SessionId(7),
                cxid: 3,
                zxid: Zxid(9),
                time: 11,
                op: OpCode::CREATE_SESSION,
            },
            body: TxnBody::CreateSession { timeout_ms: 5000 },
            digest: None,
        };
        let req = AppendEntriesRequest::<KeeperRaft> {
            vote: Vote { leader_id: LeaderId { term: 3, voted_for: Some(2) }, committed: true },
            prev_log_id: Some(codec::log_id(2, 4)),
            entries: vec![
                Entry { log_id: codec::log_id(3, 5), payload: EntryPayload::Blank },
                Entry {
                    log_id: codec::log_id(3, 6),
                    payload: EntryPayload::Normal(vec![txn.clone(), txn]),
                },
            ],
            leader_commit: Some(codec::log_id(2, 4)),
        };
        let b = enc_append(&req);
        let back = dec_append(&b).unwrap();
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.leader_commit, req.leader_commit);
        assert_eq!(back.entries, req.entries);
        for cut in 0..b.len() {
            assert!(dec_append(&b[..cut]).is_err(), "a message cut at {cut} decoded");
        }
        let v = VoteResponse { vote: req.vote, vote_granted: true, last_log_id: None };
        assert_eq!(dec_vote_resp(&enc_vote_resp(&v)).unwrap(), v);
        let huge = [0xffu8; 64];
        assert!(dec_append(&huge).is_err());
    }
}
