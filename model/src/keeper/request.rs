//! Keeper requests: opnums, bodies by opnum and the multi framing (see the module docs
//! of [`crate::keeper`] for the envelope around them).

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
