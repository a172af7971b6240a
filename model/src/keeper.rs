//! ClickHouse Keeper request payloads: the blob of an `app_log` changelog entry.
//!
//! A Keeper changelog record (see `keeperkit_wal::clickhouse`) carries, for value type 1
//! (`app_log`), one serialized ZooKeeper-protocol request wrapped in Keeper's envelope
//! (`KeeperStateMachine::getZooKeeperLogEntry` writes it, `parseRequest` reads it):
//!
//! ```text
//! i64 LE   session_id
//! i32 BE   L = 4 (xid) + 4 (opnum) + body length
//! u32 BE   xid, low 32 bits
//! i32 BE   opnum
//! ...      body (jute style: big-endian integers, i32-BE-prefixed strings/vectors)
//! -- trailer, each part present only if bytes remain (ZooKeeperLogSerializationVersion):
//! i64 LE   time (ms since the epoch)                       WITH_TIME
//! i64 LE   zxid, u8 digest_version, [u64 LE digest]         WITH_ZXID_DIGEST
//! u32 BE   xid, high 32 bits                               WITH_XID_64
//! ...      OpenTelemetry tracing context (text)            WITH_OPTIONAL_TRACING_CONTEXT
//! ```
//!
//! The digest value is read when the digest version is not 0 **or** bytes remain: 2022
//! writers ended an entry right after a zero digest version, current writers always
//! write the 8-byte placeholder. [`KeeperTrailer::digest`] keeps the difference, so
//! decoding and re-encoding any entry gives back the same bytes.
//!
//! Bodies by opnum follow `src/Common/ZooKeeper/ZooKeeperCommon.cpp` (`readImpl` /
//! `writeImpl`) as described in the changelog spec §5.3. Opnums whose encoding the
//! spec marks UNSURE (15 Create2, 17/18 watches, 19 CreateContainer, 21 CreateTTL,
//! 101/105/106 watches, 504–507) are refused as unknown: Keeper's own factory rejects
//! them in every released version the spec's author read, and guessing an encoding
//! would make us write entries Keeper cannot parse.
//!
//! Multi bodies follow `ZooKeeperMultiRequest::readImpl` (stored copy 42611794): per
//! sub-request `opnum, done, error` then the body, ended by `(-1, true, -1)`; Keeper's
//! reader takes any opnum from its factory there and leaves the read/write mix to the
//! storage layer, which rejects it; this decoder rejects it at once.
//!
//! Strictness: a few things Keeper tolerates are refused here because they could not
//! be re-encoded byte for byte, and no Keeper writer produces them: a request whose
//! body is shorter than its length field says, a bool byte other than 0/1, and a multi
//! sub-request header whose error field is not −1. A null string (length −1) reads as
//! empty, as in Keeper; it re-encodes as length 0 (Keeper itself never writes −1).
//! Paths, schemes and ids must be UTF-8 (`InvalidUtf8` otherwise); data and auth
//! payloads are raw bytes.

use crate::acl::{Acl, AclList, Id, Perms};
use crate::error::{CorruptionKind, DecodeError};
use crate::jute::{Reader, Writer};

/// Keeper's request opnums (`Coordination::OpNum`, `ZooKeeperConstants.h`).
pub mod opnum {
    /// Close a session (client close or expiry by the leader).
    pub const CLOSE: i32 = -11;
    /// Terminator of a multi's sub-request list; never a request.
    pub const ERROR: i32 = -1;
    /// Create a node.
    pub const CREATE: i32 = 1;
    /// Remove a node.
    pub const REMOVE: i32 = 2;
    /// Exists (a read; logged only with quorum reads).
    pub const EXISTS: i32 = 3;
    /// Get data (a read).
    pub const GET: i32 = 4;
    /// Set data.
    pub const SET: i32 = 5;
    /// Get ACL (a read).
    pub const GET_ACL: i32 = 6;
    /// Set ACL.
    pub const SET_ACL: i32 = 7;
    /// List children without stat (a read).
    pub const SIMPLE_LIST: i32 = 8;
    /// Sync (replicated).
    pub const SYNC: i32 = 9;
    /// Session heartbeat.
    pub const HEARTBEAT: i32 = 11;
    /// List children (a read).
    pub const LIST: i32 = 12;
    /// Version check.
    pub const CHECK: i32 = 13;
    /// Multi (write transaction).
    pub const MULTI: i32 = 14;
    /// Reconfig.
    pub const RECONFIG: i32 = 16;
    /// Read-only multi.
    pub const MULTI_READ: i32 = 22;
    /// Add authentication to a session.
    pub const AUTH: i32 = 100;
    /// Filtered list (a read).
    pub const FILTERED_LIST: i32 = 500;
    /// Check that a node does not exist.
    pub const CHECK_NOT_EXISTS: i32 = 501;
    /// Create unless the node exists.
    pub const CREATE_IF_NOT_EXISTS: i32 = 502;
    /// Remove a subtree.
    pub const REMOVE_RECURSIVE: i32 = 503;
    /// Allocate a new session id (internal).
    pub const SESSION_ID: i32 = 997;
}

/// Keeper's limit on a string or vector length inside a request
/// (`MAX_STRING_OR_ARRAY_SIZE = 1 << 28`, `ZooKeeperConstants.h`). The reader also
/// checks every length against the bytes that remain before allocating.
pub const STRING_LEN_MAX: usize = 1 << 28;

/// The xid Keeper's leader uses for the Close request of an expired session
/// (`CLOSE_XID`, 32-bit sessions).
pub const CLOSE_XID: i64 = i32::MAX as i64;

/// Smallest encoding of a sub-request header in a multi: i32 opnum, bool done,
/// i32 error.
const MULTI_HEADER_LEN: usize = 9;

/// `flags` bit of an ephemeral create (`zkutil::CreateMode`).
pub const CREATE_FLAG_EPHEMERAL: i32 = 1;
/// `flags` bit of a sequential create.
pub const CREATE_FLAG_SEQUENTIAL: i32 = 2;

/// Body of Create (1) and CreateIfNotExists (502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Path of the node (for a sequential create: the prefix).
    pub path: String,
    /// Initial data.
    pub data: Vec<u8>,
    /// ACLs of the new node.
    pub acls: AclList,
    /// Create flags: bit 0 ephemeral, bit 1 sequential. Keeper's `readImpl` ignores
    /// other bits and its `writeImpl` writes only these two (`ZooKeeperCommon.cpp`,
    /// stored copy 42611794), so every stored entry has `flags` in 0..=3; other values
    /// are kept as read.
    pub flags: i32,
}

impl CreateRequest {
    /// Whether the ephemeral flag is set.
    pub fn is_ephemeral(&self) -> bool {
        self.flags & CREATE_FLAG_EPHEMERAL != 0
    }

    /// Whether the sequential flag is set.
    pub fn is_sequential(&self) -> bool {
        self.flags & CREATE_FLAG_SEQUENTIAL != 0
    }
}

/// One Keeper request, decoded from its opnum and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperRequest {
    /// −11: close the session; empty body.
    Close,
    /// 1: create a node.
    Create(CreateRequest),
    /// 502: create a node unless it exists (same body as Create).
    CreateIfNotExists(CreateRequest),
    /// 2: remove a node if its version matches (−1 = any).
    Remove {
        /// Path.
        path: String,
        /// Expected version, −1 for any.
        version: i32,
    },
    /// 3: exists.
    Exists {
        /// Path.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// 4: get data.
    Get {
        /// Path.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// 5: set data if the version matches.
    Set {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version, −1 for any.
        version: i32,
    },
    /// 6: get ACL.
    GetAcl {
        /// Path.
        path: String,
    },
    /// 7: set ACL if the ACL version matches.
    SetAcl {
        /// Path.
        path: String,
        /// New ACLs.
        acls: AclList,
        /// Expected ACL version, −1 for any.
        version: i32,
    },
    /// 8: list children (names only).
    SimpleList {
        /// Path.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// 9: sync.
    Sync {
        /// Path.
        path: String,
    },
    /// 11: heartbeat; empty body.
    Heartbeat,
    /// 12: list children.
    List {
        /// Path.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// 13: check a node's version.
    Check {
        /// Path.
        path: String,
        /// Expected version, −1 for any.
        version: i32,
    },
    /// 501: check that a node does not exist (same body as Check).
    CheckNotExists {
        /// Path.
        path: String,
        /// Version field (written by clients as −1).
        version: i32,
    },
    /// 14: a write transaction; sub-requests are Create, CreateIfNotExists, Remove,
    /// RemoveRecursive, Set, Check or CheckNotExists.
    Multi(Vec<KeeperRequest>),
    /// 22: a read-only transaction; sub-requests are Get, Exists, SimpleList,
    /// FilteredList (and List).
    MultiRead(Vec<KeeperRequest>),
    /// 16: reconfig.
    Reconfig {
        /// Servers joining (`server.N=host:port...` text).
        joining: String,
        /// Servers leaving (ids).
        leaving: String,
        /// New membership (text).
        new_members: String,
        /// Expected config version, −1 for any.
        version: i64,
    },
    /// 100: add authentication to the session.
    Auth {
        /// The `type` field (ignored by Keeper, 0 from clients).
        auth_type: i32,
        /// Scheme, e.g. `digest`.
        scheme: String,
        /// Credentials, e.g. `user:password`.
        data: Vec<u8>,
    },
    /// 500: filtered list.
    FilteredList {
        /// Path.
        path: String,
        /// Whether to leave a watch.
        watch: bool,
        /// 0 all, 1 persistent only, 2 ephemeral only.
        list_type: u8,
    },
    /// 503: remove a subtree, at most `remove_nodes_limit` nodes.
    RemoveRecursive {
        /// Path.
        path: String,
        /// Largest number of nodes the request may remove.
        remove_nodes_limit: u32,
    },
    /// 997: allocate a session id (logged with session id −1 and xid 0).
    SessionId {
        /// Id the receiving server gave the pending session.
        internal_id: i64,
        /// Requested session timeout in ms.
        session_timeout_ms: i64,
        /// Id of the server the client is connected to.
        server_id: i32,
    },
}

/// Reads a Keeper string as raw bytes: i32 BE length (−1 = empty), checked against
/// [`STRING_LEN_MAX`] and the bytes that remain.
fn read_bytes(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    Ok(r.buffer()?.map(<[u8]>::to_vec).unwrap_or_default())
}

/// Reads a Keeper string that must be UTF-8 (paths, schemes, ids).
fn read_string(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let at = r.position() as u64;
    let b = r.buffer()?.unwrap_or_default();
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| DecodeError::new(at, CorruptionKind::InvalidUtf8))
}

/// Reads a bool that must be 0 or 1 (anything else could not be re-encoded).
fn read_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    let at = r.position() as u64;
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(DecodeError::new(
            at,
            CorruptionKind::UnknownValue { field: "bool byte", found: u64::from(b) },
        )),
    }
}

fn read_acls(r: &mut Reader<'_>) -> Result<AclList, DecodeError> {
    // An ACL takes at least 12 bytes: perms and two string lengths.
    let n = r.vector_len(12)?.unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let perms = Perms(r.i32()?);
        let scheme = read_string(r)?;
        let id = read_string(r)?;
        out.push(Acl { perms, id: Id { scheme, id } });
    }
    Ok(out)
}

fn write_bytes(w: &mut Writer, b: &[u8]) {
    w.buffer(Some(b));
}

fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.vector_len(Some(acls.len()));
    for a in acls {
        w.i32(a.perms.0);
        write_bytes(w, a.id.scheme.as_bytes());
        write_bytes(w, a.id.id.as_bytes());
    }
}

fn read_create(r: &mut Reader<'_>) -> Result<CreateRequest, DecodeError> {
    Ok(CreateRequest {
        path: read_string(r)?,
        data: read_bytes(r)?,
        acls: read_acls(r)?,
        flags: r.i32()?,
    })
}

fn write_create(w: &mut Writer, c: &CreateRequest) {
    write_bytes(w, c.path.as_bytes());
    write_bytes(w, &c.data);
    write_acls(w, &c.acls);
    w.i32(c.flags);
}

/// Whether `op` may appear inside a Multi (14).
fn allowed_in_multi(op: i32) -> bool {
    matches!(
        op,
        opnum::CREATE
            | opnum::CREATE_IF_NOT_EXISTS
            | opnum::REMOVE
            | opnum::REMOVE_RECURSIVE
            | opnum::SET
            | opnum::CHECK
            | opnum::CHECK_NOT_EXISTS
    )
}

/// Whether `op` may appear inside a MultiRead (22).
fn allowed_in_multi_read(op: i32) -> bool {
    matches!(
        op,
        opnum::GET | opnum::EXISTS | opnum::SIMPLE_LIST | opnum::LIST | opnum::FILTERED_LIST
    )
}

impl KeeperRequest {
    /// The opnum this request is written with.
    pub fn opnum(&self) -> i32 {
        match self {
            KeeperRequest::Close => opnum::CLOSE,
            KeeperRequest::Create(_) => opnum::CREATE,
            KeeperRequest::CreateIfNotExists(_) => opnum::CREATE_IF_NOT_EXISTS,
            KeeperRequest::Remove { .. } => opnum::REMOVE,
            KeeperRequest::Exists { .. } => opnum::EXISTS,
            KeeperRequest::Get { .. } => opnum::GET,
            KeeperRequest::Set { .. } => opnum::SET,
            KeeperRequest::GetAcl { .. } => opnum::GET_ACL,
            KeeperRequest::SetAcl { .. } => opnum::SET_ACL,
            KeeperRequest::SimpleList { .. } => opnum::SIMPLE_LIST,
            KeeperRequest::Sync { .. } => opnum::SYNC,
            KeeperRequest::Heartbeat => opnum::HEARTBEAT,
            KeeperRequest::List { .. } => opnum::LIST,
            KeeperRequest::Check { .. } => opnum::CHECK,
            KeeperRequest::CheckNotExists { .. } => opnum::CHECK_NOT_EXISTS,
            KeeperRequest::Multi(_) => opnum::MULTI,
            KeeperRequest::MultiRead(_) => opnum::MULTI_READ,
            KeeperRequest::Reconfig { .. } => opnum::RECONFIG,
            KeeperRequest::Auth { .. } => opnum::AUTH,
            KeeperRequest::FilteredList { .. } => opnum::FILTERED_LIST,
            KeeperRequest::RemoveRecursive { .. } => opnum::REMOVE_RECURSIVE,
            KeeperRequest::SessionId { .. } => opnum::SESSION_ID,
        }
    }

    /// Keeper's name of the operation (`toString(OpNum)`), e.g. `Create`, `Multi`.
    pub fn name(&self) -> &'static str {
        match self {
            KeeperRequest::Close => "Close",
            KeeperRequest::Create(_) => "Create",
            KeeperRequest::CreateIfNotExists(_) => "CreateIfNotExists",
            KeeperRequest::Remove { .. } => "Remove",
            KeeperRequest::Exists { .. } => "Exists",
            KeeperRequest::Get { .. } => "Get",
            KeeperRequest::Set { .. } => "Set",
            KeeperRequest::GetAcl { .. } => "GetACL",
            KeeperRequest::SetAcl { .. } => "SetACL",
            KeeperRequest::SimpleList { .. } => "SimpleList",
            KeeperRequest::Sync { .. } => "Sync",
            KeeperRequest::Heartbeat => "Heartbeat",
            KeeperRequest::List { .. } => "List",
            KeeperRequest::Check { .. } => "Check",
            KeeperRequest::CheckNotExists { .. } => "CheckNotExists",
            KeeperRequest::Multi(_) => "Multi",
            KeeperRequest::MultiRead(_) => "MultiRead",
            KeeperRequest::Reconfig { .. } => "Reconfig",
            KeeperRequest::Auth { .. } => "Auth",
            KeeperRequest::FilteredList { .. } => "FilteredList",
            KeeperRequest::RemoveRecursive { .. } => "RemoveRecursive",
            KeeperRequest::SessionId { .. } => "SessionID",
        }
    }

    /// The paths the request names, sub-requests of a multi included, in order.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            KeeperRequest::Create(c) | KeeperRequest::CreateIfNotExists(c) => vec![&c.path],
            KeeperRequest::Remove { path, .. }
            | KeeperRequest::Exists { path, .. }
            | KeeperRequest::Get { path, .. }
            | KeeperRequest::Set { path, .. }
            | KeeperRequest::GetAcl { path }
            | KeeperRequest::SetAcl { path, .. }
            | KeeperRequest::SimpleList { path, .. }
            | KeeperRequest::Sync { path }
            | KeeperRequest::List { path, .. }
            | KeeperRequest::Check { path, .. }
            | KeeperRequest::CheckNotExists { path, .. }
            | KeeperRequest::FilteredList { path, .. }
            | KeeperRequest::RemoveRecursive { path, .. } => vec![path],
            KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) => {
                subs.iter().flat_map(KeeperRequest::paths).collect()
            }
            KeeperRequest::Close
            | KeeperRequest::Heartbeat
            | KeeperRequest::Reconfig { .. }
            | KeeperRequest::Auth { .. }
            | KeeperRequest::SessionId { .. } => Vec::new(),
        }
    }

    /// Whether Keeper treats the request as a read (`isReadRequest`): reads reach the
    /// log only with `quorum_reads`.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            KeeperRequest::Exists { .. }
                | KeeperRequest::Get { .. }
                | KeeperRequest::GetAcl { .. }
                | KeeperRequest::SimpleList { .. }
                | KeeperRequest::List { .. }
                | KeeperRequest::FilteredList { .. }
                | KeeperRequest::MultiRead(_)
        )
    }

    /// Decodes the body of a request with opnum `op` from `r`. Multi sub-requests are
    /// decoded recursively one level deep (a multi inside a multi is refused).
    ///
    /// An opnum this crate does not know is [`CorruptionKind::UnknownTxnType`] at the
    /// reader's position; callers add the file, offset and log index.
    pub fn decode_body(op: i32, r: &mut Reader<'_>) -> Result<KeeperRequest, DecodeError> {
        Self::decode_body_at(op, r, None)
    }

    fn decode_body_at(
        op: i32,
        r: &mut Reader<'_>,
        inside: Option<i32>,
    ) -> Result<KeeperRequest, DecodeError> {
        let at = r.position() as u64;
        let req = match op {
            opnum::CLOSE => KeeperRequest::Close,
            opnum::CREATE => KeeperRequest::Create(read_create(r)?),
            opnum::CREATE_IF_NOT_EXISTS => KeeperRequest::CreateIfNotExists(read_create(r)?),
            opnum::REMOVE => KeeperRequest::Remove { path: read_string(r)?, version: r.i32()? },
            opnum::EXISTS => KeeperRequest::Exists { path: read_string(r)?, watch: read_bool(r)? },
            opnum::GET => KeeperRequest::Get { path: read_string(r)?, watch: read_bool(r)? },
            opnum::SET => KeeperRequest::Set {
                path: read_string(r)?,
                data: read_bytes(r)?,
                version: r.i32()?,
            },
            opnum::GET_ACL => KeeperRequest::GetAcl { path: read_string(r)? },
            opnum::SET_ACL => KeeperRequest::SetAcl {
                path: read_string(r)?,
                acls: read_acls(r)?,
                version: r.i32()?,
            },
            opnum::SIMPLE_LIST => {
                KeeperRequest::SimpleList { path: read_string(r)?, watch: read_bool(r)? }
            }
            opnum::SYNC => KeeperRequest::Sync { path: read_string(r)? },
            opnum::HEARTBEAT => KeeperRequest::Heartbeat,
            opnum::LIST => KeeperRequest::List { path: read_string(r)?, watch: read_bool(r)? },
            opnum::CHECK => KeeperRequest::Check { path: read_string(r)?, version: r.i32()? },
            opnum::CHECK_NOT_EXISTS => {
                KeeperRequest::CheckNotExists { path: read_string(r)?, version: r.i32()? }
            }
            opnum::MULTI | opnum::MULTI_READ => {
                if let Some(outer) = inside {
                    return Err(DecodeError::new(
                        at,
                        CorruptionKind::bad_request(format!(
                            "opnum {op} (multi) nested inside a multi (opnum {outer})"
                        )),
                    ));
                }
                let subs = decode_multi(op, r)?;
                if op == opnum::MULTI {
                    KeeperRequest::Multi(subs)
                } else {
                    KeeperRequest::MultiRead(subs)
                }
            }
            opnum::RECONFIG => KeeperRequest::Reconfig {
                joining: read_string(r)?,
                leaving: read_string(r)?,
                new_members: read_string(r)?,
                version: r.i64()?,
            },
            opnum::AUTH => KeeperRequest::Auth {
                auth_type: r.i32()?,
                scheme: read_string(r)?,
                data: read_bytes(r)?,
            },
            opnum::FILTERED_LIST => KeeperRequest::FilteredList {
                path: read_string(r)?,
                watch: read_bool(r)?,
                list_type: r.u8()?,
            },
            opnum::REMOVE_RECURSIVE => KeeperRequest::RemoveRecursive {
                path: read_string(r)?,
                remove_nodes_limit: u32::from_be_bytes(r.i32()?.to_be_bytes()),
            },
            opnum::SESSION_ID => KeeperRequest::SessionId {
                internal_id: r.i64()?,
                session_timeout_ms: r.i64()?,
                server_id: r.i32()?,
            },
            other => return Err(DecodeError::new(at, CorruptionKind::UnknownTxnType(other))),
        };
        Ok(req)
    }

    /// Encodes the body (without opnum) into `w`.
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            KeeperRequest::Close | KeeperRequest::Heartbeat => {}
            KeeperRequest::Create(c) | KeeperRequest::CreateIfNotExists(c) => write_create(w, c),
            KeeperRequest::Remove { path, version }
            | KeeperRequest::Check { path, version }
            | KeeperRequest::CheckNotExists { path, version } => {
                write_bytes(w, path.as_bytes());
                w.i32(*version);
            }
            KeeperRequest::Exists { path, watch }
            | KeeperRequest::Get { path, watch }
            | KeeperRequest::SimpleList { path, watch }
            | KeeperRequest::List { path, watch } => {
                write_bytes(w, path.as_bytes());
                w.bool(*watch);
            }
            KeeperRequest::Set { path, data, version } => {
                write_bytes(w, path.as_bytes());
                write_bytes(w, data);
                w.i32(*version);
            }
            KeeperRequest::GetAcl { path } | KeeperRequest::Sync { path } => {
                write_bytes(w, path.as_bytes());
            }
            KeeperRequest::SetAcl { path, acls, version } => {
                write_bytes(w, path.as_bytes());
                write_acls(w, acls);
                w.i32(*version);
            }
            KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) => {
                for s in subs {
                    w.i32(s.opnum());
                    w.bool(false);
                    w.i32(-1);
                    s.encode_body(w);
                }
                w.i32(opnum::ERROR);
                w.bool(true);
                w.i32(-1);
            }
            KeeperRequest::Reconfig { joining, leaving, new_members, version } => {
                write_bytes(w, joining.as_bytes());
                write_bytes(w, leaving.as_bytes());
                write_bytes(w, new_members.as_bytes());
                w.i64(*version);
            }
            KeeperRequest::Auth { auth_type, scheme, data } => {
                w.i32(*auth_type);
                write_bytes(w, scheme.as_bytes());
                write_bytes(w, data);
            }
            KeeperRequest::FilteredList { path, watch, list_type } => {
                write_bytes(w, path.as_bytes());
                w.bool(*watch);
                w.u8(*list_type);
            }
            KeeperRequest::RemoveRecursive { path, remove_nodes_limit } => {
                write_bytes(w, path.as_bytes());
                w.raw(&remove_nodes_limit.to_be_bytes());
            }
            KeeperRequest::SessionId { internal_id, session_timeout_ms, server_id } => {
                w.i64(*internal_id);
                w.i64(*session_timeout_ms);
                w.i32(*server_id);
            }
        }
    }
}

/// Decodes the sub-requests of a Multi/MultiRead up to and including the terminator
/// (`ZooKeeperMultiRequest::readImpl`).
fn decode_multi(op: i32, r: &mut Reader<'_>) -> Result<Vec<KeeperRequest>, DecodeError> {
    let mut subs = Vec::new();
    loop {
        if r.remaining() < MULTI_HEADER_LEN {
            return Err(DecodeError::new(
                r.position() as u64,
                CorruptionKind::MissingTerminator {
                    what: "multi request (terminator: opnum -1, done 1, error -1)",
                },
            ));
        }
        let at = r.position() as u64;
        let sub_op = r.i32()?;
        let done = read_bool(r)?;
        let error = r.i32()?;
        if done {
            if sub_op != opnum::ERROR || error != -1 {
                return Err(DecodeError::new(
                    at,
                    CorruptionKind::bad_request(format!(
                        "multi terminator must be (opnum -1, error -1), found ({sub_op}, {error})"
                    )),
                ));
            }
            return Ok(subs);
        }
        if error != -1 {
            return Err(DecodeError::new(
                at,
                CorruptionKind::bad_request(format!(
                    "multi sub-request header has error {error}, expected -1"
                )),
            ));
        }
        let allowed = if op == opnum::MULTI {
            allowed_in_multi(sub_op)
        } else {
            allowed_in_multi_read(sub_op)
        };
        if !allowed {
            if matches!(sub_op, opnum::MULTI | opnum::MULTI_READ) || is_known(sub_op) {
                return Err(DecodeError::new(
                    at,
                    CorruptionKind::bad_request(format!(
                        "opnum {sub_op} is not allowed inside a multi with opnum {op}"
                    )),
                ));
            }
            return Err(DecodeError::new(at, CorruptionKind::UnknownTxnType(sub_op)));
        }
        subs.push(KeeperRequest::decode_body_at(sub_op, r, Some(op))?);
    }
}

/// Whether this crate knows how to decode `op`.
pub fn is_known(op: i32) -> bool {
    matches!(
        op,
        opnum::CLOSE
            | opnum::CREATE
            | opnum::REMOVE
            | opnum::EXISTS
            | opnum::GET
            | opnum::SET
            | opnum::GET_ACL
            | opnum::SET_ACL
            | opnum::SIMPLE_LIST
            | opnum::SYNC
            | opnum::HEARTBEAT
            | opnum::LIST
            | opnum::CHECK
            | opnum::MULTI
            | opnum::RECONFIG
            | opnum::MULTI_READ
            | opnum::AUTH
            | opnum::FILTERED_LIST
            | opnum::CHECK_NOT_EXISTS
            | opnum::CREATE_IF_NOT_EXISTS
            | opnum::REMOVE_RECURSIVE
            | opnum::SESSION_ID
    )
}

/// Digest versions Keeper writes (`KeeperStorage::DigestVersion` / `KeeperCommon.h`).
pub mod digest_version {
    /// No digest: checks are skipped.
    pub const NO_DIGEST: u8 = 0;
    /// V4: the current version in 2024–2025 Keeper.
    pub const V4: u8 = 4;
    /// V5: TTL fields hashed (2026, PR #100397).
    pub const V5: u8 = 5;
}

/// The zxid/digest part of the trailer (WITH_ZXID_DIGEST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    /// The zxid the leader assigned; 0 means "use the log index".
    pub zxid: i64,
    /// Digest version; 0 = no digest.
    pub digest_version: u8,
    /// Digest value. `None` only for 2022 entries that end right after a zero digest
    /// version; current writers always write the (placeholder) value.
    pub digest: Option<u64>,
}

/// The optional fields after the request (see the module docs). A later field is
/// present only if every earlier one is; [`KeeperLogEntry::encode`] writes absent
/// earlier fields as zeros when a later one is present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeeperTrailer {
    /// Request time in ms since the Unix epoch.
    pub time_ms: Option<i64>,
    /// Zxid and digest patched in by the leader.
    pub zxid_digest: Option<ZxidDigest>,
    /// High 32 bits of a 64-bit xid (sessions with `use_xid_64`).
    pub xid_high: Option<u32>,
    /// OpenTelemetry tracing context, kept as the raw bytes (text) that follow.
    pub tracing_context: Option<Vec<u8>>,
}

impl KeeperTrailer {
    /// The serialization version Keeper would detect
    /// (`ZooKeeperLogSerializationVersion`): 0 INITIAL, 1 WITH_TIME, 2
    /// WITH_ZXID_DIGEST, 3 WITH_XID_64, 4 WITH_OPTIONAL_TRACING_CONTEXT.
    pub fn serialization_version(&self) -> u8 {
        if self.tracing_context.is_some() {
            4
        } else if self.xid_high.is_some() {
            3
        } else if self.zxid_digest.is_some() {
            2
        } else if self.time_ms.is_some() {
            1
        } else {
            0
        }
    }
}

/// One decoded `app_log` blob: the envelope, the request and the trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperLogEntry {
    /// Session id (−1 for SessionID requests).
    pub session_id: i64,
    /// Low 32 bits of the xid, as stored.
    pub xid_low: u32,
    /// The request.
    pub request: KeeperRequest,
    /// Optional trailing fields.
    pub trailer: KeeperTrailer,
}

impl KeeperLogEntry {
    /// An entry the way current Keeper writes it before the leader patches it: time,
    /// zxid 0, digest version 0 with a zero value, and the xid's high half only when
    /// the xid does not fit in an i32 (a `use_xid_64` session).
    pub fn new(session_id: i64, xid: i64, request: KeeperRequest, time_ms: i64) -> KeeperLogEntry {
        let [h0, h1, h2, h3, l0, l1, l2, l3] = xid.to_be_bytes();
        let fits = i32::try_from(xid).is_ok();
        KeeperLogEntry {
            session_id,
            xid_low: u32::from_be_bytes([l0, l1, l2, l3]),
            request,
            trailer: KeeperTrailer {
                time_ms: Some(time_ms),
                zxid_digest: Some(ZxidDigest { zxid: 0, digest_version: 0, digest: Some(0) }),
                xid_high: (!fits).then(|| u32::from_be_bytes([h0, h1, h2, h3])),
                tracing_context: None,
            },
        }
    }

    /// The full xid: `(high << 32) | low` when the high half is present, else the low
    /// half sign-extended (as `KeeperStateMachine::parseRequest` does).
    pub fn xid(&self) -> i64 {
        match self.trailer.xid_high {
            Some(h) => {
                i64::from_be_bytes(((u64::from(h) << 32) | u64::from(self.xid_low)).to_be_bytes())
            }
            None => i64::from(i32::from_be_bytes(self.xid_low.to_be_bytes())),
        }
    }

    /// The zxid stored in the trailer, if any (0 means "the log index").
    pub fn zxid(&self) -> Option<i64> {
        self.trailer.zxid_digest.map(|z| z.zxid)
    }

    /// Decodes an `app_log` blob. Errors carry the offset inside `blob`; an unknown
    /// opnum is [`CorruptionKind::UnknownTxnType`].
    pub fn decode(blob: &[u8]) -> Result<KeeperLogEntry, DecodeError> {
        let mut r = Reader::with_len_max(blob, STRING_LEN_MAX);
        let session_id = i64::from_le_bytes(le8(&mut r)?);
        let len_at = r.position() as u64;
        let len = r.i32()?;
        let body_len = usize::try_from(len).ok().filter(|&n| n >= 8).ok_or_else(|| {
            DecodeError::new(
                len_at,
                CorruptionKind::LengthOutOfRange { len: i64::from(len), max: u64::MAX },
            )
        })?;
        if body_len > r.remaining() {
            return Err(DecodeError::new(
                len_at,
                CorruptionKind::Truncated {
                    needed: body_len as u64,
                    available: r.remaining() as u64,
                },
            ));
        }
        let request_start = r.position();
        let request_bytes = r.bytes(body_len)?;
        let mut rq = Reader::with_len_max(request_bytes, STRING_LEN_MAX);
        let xid_low = u32::from_be_bytes(rq.i32()?.to_be_bytes());
        let op = rq.i32()?;
        let request =
            KeeperRequest::decode_body(op, &mut rq).map_err(|e| e.shifted(request_start as u64))?;
        if !rq.is_empty() {
            return Err(DecodeError::new(
                (request_start + rq.position()) as u64,
                CorruptionKind::inconsistent(format!(
                    "request length field says {body_len} bytes, opnum {op} body ends {} bytes \
                     earlier",
                    rq.remaining()
                )),
            ));
        }
        let trailer = decode_trailer(&mut r)?;
        Ok(KeeperLogEntry { session_id, xid_low, request, trailer })
    }

    /// Encodes the entry. `decode(encode(e)) == e` for every entry `decode` returns,
    /// and `encode(decode(b)) == b` for every blob Keeper writes.
    ///
    /// # Panics
    /// When a string, data or ACL list is longer than `i32::MAX` bytes/elements
    /// (Keeper's own limit is [`STRING_LEN_MAX`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out` (see [`KeeperLogEntry::encode`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.session_id.to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut w = Writer::from_vec(std::mem::take(out));
        w.raw(&self.xid_low.to_be_bytes());
        w.i32(self.request.opnum());
        self.request.encode_body(&mut w);
        *out = w.into_inner();
        let len = i32::try_from(out.len() - len_at - 4).expect("request shorter than 2 GiB");
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        encode_trailer(&self.trailer, out);
    }
}

fn le8(r: &mut Reader<'_>) -> Result<[u8; 8], DecodeError> {
    let b = r.bytes(8)?;
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    Ok(out)
}

fn decode_trailer(r: &mut Reader<'_>) -> Result<KeeperTrailer, DecodeError> {
    let mut t = KeeperTrailer::default();
    if r.is_empty() {
        return Ok(t);
    }
    t.time_ms = Some(i64::from_le_bytes(le8(r)?));
    if r.is_empty() {
        return Ok(t);
    }
    let zxid = i64::from_le_bytes(le8(r)?);
    let digest_version = r.u8()?;
    let digest =
        if digest_version != 0 || !r.is_empty() { Some(u64::from_le_bytes(le8(r)?)) } else { None };
    t.zxid_digest = Some(ZxidDigest { zxid, digest_version, digest });
    if r.is_empty() {
        return Ok(t);
    }
    t.xid_high = Some(u32::from_be_bytes(r.i32()?.to_be_bytes()));
    if r.is_empty() {
        return Ok(t);
    }
    t.tracing_context = Some(r.rest().to_vec());
    Ok(t)
}

fn encode_trailer(t: &KeeperTrailer, out: &mut Vec<u8>) {
    let version = t.serialization_version();
    if version >= 1 {
        out.extend_from_slice(&t.time_ms.unwrap_or(0).to_le_bytes());
    }
    if version >= 2 {
        let zd = t.zxid_digest.unwrap_or(ZxidDigest { zxid: 0, digest_version: 0, digest: None });
        out.extend_from_slice(&zd.zxid.to_le_bytes());
        out.push(zd.digest_version);
        // The value is read when the version is non-zero or more bytes follow, so it
        // must be written in those cases even if absent.
        let value = match zd.digest {
            Some(v) => Some(v),
            None if zd.digest_version != 0 || version >= 3 => Some(0),
            None => None,
        };
        if let Some(v) = value {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    if version >= 3 {
        out.extend_from_slice(&t.xid_high.unwrap_or(0).to_be_bytes());
    }
    if let Some(tc) = &t.tracing_context {
        out.extend_from_slice(tc);
    }
}

/// The stat fields Keeper keeps per node, as stored in its snapshots (stats as clients
/// see them: Keeper stores cversion as served, unlike ZooKeeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeeperStat {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Create time, ms since the epoch.
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Children version.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owning session of an ephemeral node, 0 for a persistent one.
    pub ephemeral_owner: i64,
    /// Number of direct children.
    pub num_children: i32,
    /// Zxid of the last change of the children.
    pub pzxid: i64,
}

/// Computes Keeper's digest of one node (snapshot spec §4.1; `calculateDigest` in
/// `KeeperStorage.cpp` for V1–V4, `KeeperNodeStats::calculateDigest` in
/// `KeeperCommon.cpp` for V5): SipHash-2-4 with key (0, 0) over the plain
/// concatenation of path, data, czxid, mzxid, ctime, mtime (i64 LE), version, cversion,
/// aversion (i32 LE), ephemeralOwner (i64 LE), numChildren (i32 LE), pzxid (i64 LE),
/// and for V5 `u8 is_ttl` then `i64 ttl` when it is a TTL node. No length prefixes.
/// A result of 0 becomes 1 (0 means "not computed" in Keeper).
///
/// numChildren is hashed as 0 for an ephemeral node (`ephemeral_owner != 0`) and, in
/// V5, for a TTL node: Keeper's stat keeps those in a union with the owner/ttl, and
/// its `numChildren()` accessor returns 0 for them.
///
/// `digest_version` is one of [`digest_version`]'s values; older versions (1–3) hashed
/// the same fields (V3 fixed a cast and a duplicated czxid: UNSURE, only V4 and V5 are
/// checked against vectors). The function is only meaningful for versions ≥ 1.
pub fn node_digest(
    digest_version: u8,
    path: &[u8],
    data: &[u8],
    stat: &KeeperStat,
    ttl_ms: Option<i64>,
) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(path);
    h.write(data);
    h.write(&stat.czxid.to_le_bytes());
    h.write(&stat.mzxid.to_le_bytes());
    h.write(&stat.ctime.to_le_bytes());
    h.write(&stat.mtime.to_le_bytes());
    h.write(&stat.version.to_le_bytes());
    h.write(&stat.cversion.to_le_bytes());
    h.write(&stat.aversion.to_le_bytes());
    h.write(&stat.ephemeral_owner.to_le_bytes());
    let ttl = if digest_version >= digest_version::V5 { ttl_ms } else { None };
    let no_children = stat.ephemeral_owner != 0 || ttl.is_some();
    let num_children = if no_children { 0 } else { stat.num_children };
    h.write(&num_children.to_le_bytes());
    h.write(&stat.pzxid.to_le_bytes());
    if digest_version >= digest_version::V5 {
        h.write(&[u8::from(ttl.is_some())]);
        if let Some(t) = ttl {
            h.write(&t.to_le_bytes());
        }
    }
    match h.finish() {
        0 => 1,
        d => d,
    }
}

/// Whether a node counts in Keeper's tree digest: every node except the data-carrying
/// children of `/keeper` (`/keeper/api_version`, `/keeper/feature_flags`, ...), which
/// Keeper inserts without updating the digest. `/` and `/keeper` count.
pub fn counts_in_tree_digest(path: &[u8]) -> bool {
    !path.starts_with(b"/keeper/")
}

/// A running tree digest: the wrapping sum of node digests (snapshot spec §4.2).
/// Keeper updates it by subtracting a node's old digest and adding the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeDigest(pub u64);

impl TreeDigest {
    /// Adds a node digest.
    pub fn add(&mut self, node_digest: u64) {
        self.0 = self.0.wrapping_add(node_digest);
    }

    /// Removes a node digest.
    pub fn remove(&mut self, node_digest: u64) {
        self.0 = self.0.wrapping_sub(node_digest);
    }
}

/// The SipHash-2-4 (key 0, 0) of a byte string: what ClickHouse's `sipHash64` returns
/// and what Keeper's changelog checksum and digests are built on.
pub fn sip_hash64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(bytes);
    h.finish()
}

/// NuRaft's binary structures that Keeper stores: `cluster_config` (changelog entries
/// of value type 2, snapshot trailers) and `snapshot` (snapshot metadata).
///
/// Layout (NuRaft `src/cluster_config.cxx`, `src/srv_config.cxx`, `src/snapshot.cxx`,
/// `src/buffer.cxx`; unchanged since 2019 apart from the `new_joiner` flag bit): every
/// integer little-endian, byte by byte; `user_ctx` as an i32 length and bytes;
/// endpoint and aux as NUL-terminated strings.
pub mod nuraft {
    use crate::error::DecodeError;
    use crate::le::Cursor as Cur;

    /// One server of a cluster config (`srv_config`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServerConfig {
        /// Server id.
        pub id: i32,
        /// Data center id.
        pub dc_id: i32,
        /// `host:port` (NUL-terminated on disk, so it cannot contain NUL).
        pub endpoint: String,
        /// Auxiliary text, usually empty.
        pub aux: String,
        /// Flags: bit 0 learner, bit 1 new joiner.
        pub flags: u8,
        /// Election priority.
        pub priority: i32,
    }

    /// A NuRaft `cluster_config`.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ClusterConfig {
        /// Log index of the entry holding this config.
        pub log_idx: u64,
        /// Log index of the previous config.
        pub prev_log_idx: u64,
        /// The async-replication byte (eBay's "ec" flag), 0 or 1 as written.
        pub async_replication: u8,
        /// Opaque user context.
        pub user_ctx: Vec<u8>,
        /// The servers.
        pub servers: Vec<ServerConfig>,
    }

    /// A NuRaft `snapshot` object: what Keeper stores as a snapshot's metadata.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SnapshotMeta {
        /// Snapshot type: 1 raw binary (deprecated), 2 logical object (what Keeper
        /// writes).
        pub kind: u8,
        /// Last Raft index the snapshot covers.
        pub last_log_idx: u64,
        /// Term of that index.
        pub last_log_term: u64,
        /// Size field, 0 in practice.
        pub size: u64,
        /// Cluster config at that index.
        pub config: ClusterConfig,
    }

    /// Smallest encoding of a server: ids, two empty C strings, flags, priority.
    const SERVER_LEN_MIN: usize = 4 + 4 + 1 + 1 + 1 + 4;

    /// A count (i32 LE, at least 0) of elements of at least `elem` bytes.
    fn count(c: &mut Cur<'_>, elem: usize) -> Result<usize, DecodeError> {
        c.count_i32(u64::MAX, elem)
    }

    fn put_i32(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    fn put_len(out: &mut Vec<u8>, n: usize) {
        put_i32(out, i32::try_from(n).expect("NuRaft lengths fit in an i32"));
    }

    fn put_cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl ClusterConfig {
        fn decode_from(c: &mut Cur<'_>) -> Result<ClusterConfig, DecodeError> {
            let log_idx = c.u64()?;
            let prev_log_idx = c.u64()?;
            let async_replication = c.u8()?;
            let ctx_len = count(c, 1)?;
            let user_ctx = c.take(ctx_len)?.to_vec();
            let n = count(c, SERVER_LEN_MIN)?;
            let mut servers = Vec::with_capacity(n);
            for _ in 0..n {
                servers.push(ServerConfig {
                    id: c.i32()?,
                    dc_id: c.i32()?,
                    endpoint: c.cstr()?.to_owned(),
                    aux: c.cstr()?.to_owned(),
                    flags: c.u8()?,
                    priority: c.i32()?,
                });
            }
            Ok(ClusterConfig { log_idx, prev_log_idx, async_replication, user_ctx, servers })
        }

        /// Decodes a config that must fill `buf` exactly.
        pub fn decode(buf: &[u8]) -> Result<ClusterConfig, DecodeError> {
            let mut c = Cur::new(buf);
            let cfg = ClusterConfig::decode_from(&mut c)?;
            c.expect_end("cluster config")?;
            Ok(cfg)
        }

        /// Appends the encoding to `out`.
        ///
        /// # Panics
        /// When `user_ctx` or the server list is longer than `i32::MAX`.
        pub fn encode_into(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.log_idx.to_le_bytes());
            out.extend_from_slice(&self.prev_log_idx.to_le_bytes());
            out.push(self.async_replication);
            put_len(out, self.user_ctx.len());
            out.extend_from_slice(&self.user_ctx);
            put_len(out, self.servers.len());
            for s in &self.servers {
                put_i32(out, s.id);
                put_i32(out, s.dc_id);
                put_cstr(out, &s.endpoint);
                put_cstr(out, &s.aux);
                out.push(s.flags);
                put_i32(out, s.priority);
            }
        }

        /// The encoding.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.encode_into(&mut out);
            out
        }
    }

    impl SnapshotMeta {
        /// Metadata the way Keeper's converter and tests build it: logical object,
        /// size 0, an empty config.
        pub fn new(last_log_idx: u64, last_log_term: u64) -> SnapshotMeta {
            SnapshotMeta {
                kind: 2,
                last_log_idx,
                last_log_term,
                size: 0,
                config: ClusterConfig::default(),
            }
        }

        /// Decodes metadata that must fill `buf` exactly.
        pub fn decode(buf: &[u8]) -> Result<SnapshotMeta, DecodeError> {
            let mut c = Cur::new(buf);
            let kind = c.u8()?;
            let last_log_idx = c.u64()?;
            let last_log_term = c.u64()?;
            let size = c.u64()?;
            let config = ClusterConfig::decode_from(&mut c)?;
            c.expect_end("snapshot metadata")?;
            Ok(SnapshotMeta { kind, last_log_idx, last_log_term, size, config })
        }

        /// The encoding.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = vec![self.kind];
            out.extend_from_slice(&self.last_log_idx.to_le_bytes());
            out.extend_from_slice(&self.last_log_term.to_le_bytes());
            out.extend_from_slice(&self.size.to_le_bytes());
            self.config.encode_into(&mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_reconstruction() {
        let e = KeeperLogEntry::new(1, -4, KeeperRequest::Heartbeat, 0);
        assert_eq!(e.trailer.xid_high, None);
        assert_eq!(e.xid(), -4);
        let big = (7_i64 << 32) | 0x8000_0001;
        let e = KeeperLogEntry::new(1, big, KeeperRequest::Heartbeat, 0);
        assert_eq!(e.trailer.xid_high, Some(7));
        assert_eq!(e.xid(), big);
        let back = KeeperLogEntry::decode(&e.encode()).expect("decodes");
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_opnum_is_named() {
        let mut b = 1i64.to_le_bytes().to_vec();
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&21i32.to_be_bytes());
        let e = KeeperLogEntry::decode(&b).expect_err("unknown");
        assert_eq!(e.kind, CorruptionKind::UnknownTxnType(21));
        assert_eq!(e.offset, 20);
    }
}
