//! Request bodies, by opcode.

use keeperkit_model::jute::{Reader, Writer};
use keeperkit_model::{Acl, AclList};

use super::{op, ProtoError, Result};

/// The body of every create flavour (`CreateRequest`, `CreateTTLRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The path asked for (a sequential create appends the counter).
    pub path: String,
    /// The data (`None`: a null buffer).
    pub data: Option<Vec<u8>>,
    /// The ACL list.
    pub acl: AclList,
    /// The create mode flags ([`super::create_mode`]).
    pub flags: i32,
    /// The TTL in ms (createTTL only).
    pub ttl: Option<i64>,
}

/// A client request body, by opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1).
    Create(CreateRequest),
    /// create2 (15): answers with the stat.
    Create2(CreateRequest),
    /// createContainer (19).
    CreateContainer(CreateRequest),
    /// createTTL (21).
    CreateTtl(CreateRequest),
    /// delete (2).
    Delete {
        /// Path.
        path: String,
        /// Expected version (−1: any).
        version: i32,
    },
    /// deleteContainer (20; the server's own, accepted on the wire as ZooKeeper does).
    DeleteContainer {
        /// Path.
        path: String,
    },
    /// exists (3).
    Exists {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// getData (4).
    GetData {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// setData (5).
    SetData {
        /// Path.
        path: String,
        /// New data (`None`: null).
        data: Option<Vec<u8>>,
        /// Expected version (−1: any).
        version: i32,
    },
    /// getACL (6).
    GetAcl {
        /// Path.
        path: String,
    },
    /// setACL (7).
    SetAcl {
        /// Path.
        path: String,
        /// New ACL list.
        acl: AclList,
        /// Expected ACL version (−1: any).
        version: i32,
    },
    /// getChildren (8).
    GetChildren {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// getChildren2 (12): children and the stat.
    GetChildren2 {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// sync (9).
    Sync {
        /// Path.
        path: String,
    },
    /// ping (11).
    Ping,
    /// check (13).
    Check {
        /// Path.
        path: String,
        /// Expected version (−1: any).
        version: i32,
    },
    /// multi (14): write ops, all or nothing.
    Multi(Vec<Request>),
    /// multiRead (22): getData / getChildren ops.
    MultiRead(Vec<Request>),
    /// reconfig (16).
    Reconfig {
        /// Servers joining.
        joining: Option<String>,
        /// Servers leaving.
        leaving: Option<String>,
        /// New membership.
        new_members: Option<String>,
        /// Expected config version.
        cur_config_id: i64,
    },
    /// checkWatches (17).
    CheckWatches {
        /// Path.
        path: String,
        /// [`super::watcher_type`].
        watcher_type: i32,
    },
    /// removeWatches (18).
    RemoveWatches {
        /// Path.
        path: String,
        /// [`super::watcher_type`].
        watcher_type: i32,
    },
    /// setAuth (100).
    Auth {
        /// Auth type (0).
        auth_type: i32,
        /// Scheme (`digest`, ...).
        scheme: String,
        /// Credentials.
        auth: Vec<u8>,
    },
    /// setWatches (101).
    SetWatches {
        /// The last zxid the client saw.
        relative_zxid: i64,
        /// Data watches.
        data: Vec<String>,
        /// Exist watches.
        exist: Vec<String>,
        /// Child watches.
        child: Vec<String>,
    },
    /// setWatches2 (105).
    SetWatches2 {
        /// The last zxid the client saw.
        relative_zxid: i64,
        /// Data watches.
        data: Vec<String>,
        /// Exist watches.
        exist: Vec<String>,
        /// Child watches.
        child: Vec<String>,
        /// Persistent watches.
        persistent: Vec<String>,
        /// Persistent recursive watches.
        persistent_recursive: Vec<String>,
    },
    /// sasl (102).
    Sasl {
        /// The SASL token.
        token: Vec<u8>,
    },
    /// getEphemerals (103).
    GetEphemerals {
        /// Prefix of the paths wanted.
        prefix: String,
    },
    /// getAllChildrenNumber (104).
    GetAllChildrenNumber {
        /// Path.
        path: String,
    },
    /// addWatch (106).
    AddWatch {
        /// Path.
        path: String,
        /// [`super::add_watch_mode`].
        mode: i32,
    },
    /// whoAmI (107).
    WhoAmI,
    /// closeSession (−11).
    CloseSession,
    /// ClickHouse Keeper filteredList (500): children of one kind, with the stat.
    FilteredList {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
        /// 0 all, 1 persistent only, 2 ephemeral only.
        list_type: u8,
    },
    /// ClickHouse Keeper checkNotExists (501).
    CheckNotExists {
        /// Path.
        path: String,
        /// −1: the node must not exist; else it must not have this version.
        version: i32,
    },
    /// ClickHouse Keeper createIfNotExists (502).
    CreateIfNotExists(CreateRequest),
    /// ClickHouse Keeper removeRecursive (503).
    RemoveRecursive {
        /// Path.
        path: String,
        /// Most nodes removed (0: no limit... Keeper refuses beyond it).
        limit: u32,
    },
}

fn path(r: &mut Reader<'_>, what: &'static str) -> Result<String> {
    r.string(what).map_err(ProtoError::decode(what))
}

fn opt_string(r: &mut Reader<'_>, what: &'static str) -> Result<Option<String>> {
    r.ustring().map_err(ProtoError::decode(what))
}

fn i32_(r: &mut Reader<'_>, what: &'static str) -> Result<i32> {
    r.i32().map_err(ProtoError::decode(what))
}

fn i64_(r: &mut Reader<'_>, what: &'static str) -> Result<i64> {
    r.i64().map_err(ProtoError::decode(what))
}

fn bool_(r: &mut Reader<'_>, what: &'static str) -> Result<bool> {
    r.bool().map_err(ProtoError::decode(what))
}

fn data(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>> {
    Ok(r.buffer().map_err(ProtoError::decode("data"))?.map(<[u8]>::to_vec))
}

fn acl(r: &mut Reader<'_>) -> Result<AclList> {
    // A null ACL vector reads as empty (ZooKeeper then answers InvalidACL).
    let n = r.vector_len(12).map_err(ProtoError::decode("acl"))?.unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Acl::decode_from(r).map_err(ProtoError::decode("acl"))?);
    }
    Ok(out)
}

fn write_acl(w: &mut Writer, acl: &[Acl]) {
    w.vector_len(Some(acl.len()));
    for a in acl {
        a.encode_into(w);
    }
}

/// A vector of strings (null reads as empty).
pub(crate) fn strings(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>> {
    let n = r.vector_len(4).map_err(ProtoError::decode(what))?.unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.string(what).map_err(ProtoError::decode(what))?);
    }
    Ok(out)
}

pub(crate) fn write_strings(w: &mut Writer, v: &[String]) {
    w.vector_len(Some(v.len()));
    for s in v {
        w.ustring(Some(s));
    }
}

fn create(r: &mut Reader<'_>, ttl: bool) -> Result<CreateRequest> {
    let path = path(r, "create path")?;
    let data = data(r)?;
    let acl = acl(r)?;
    let flags = i32_(r, "create flags")?;
    let ttl = if ttl { Some(i64_(r, "ttl")?) } else { None };
    Ok(CreateRequest { path, data, acl, flags, ttl })
}

fn write_create(w: &mut Writer, c: &CreateRequest) {
    w.ustring(Some(&c.path));
    w.buffer(c.data.as_deref());
    write_acl(w, &c.acl);
    w.i32(c.flags);
    if let Some(t) = c.ttl {
        w.i64(t);
    }
}

/// Sub-ops a multi may hold (`MultiOperationRecord`).
fn in_multi(outer: i32, sub: i32) -> bool {
    match outer {
        op::MULTI => matches!(
            sub,
            op::CREATE
                | op::CREATE2
                | op::CREATE_TTL
                | op::CREATE_CONTAINER
                | op::DELETE
                | op::SET_DATA
                | op::CHECK
                | op::CHECK_NOT_EXISTS
                | op::CREATE_IF_NOT_EXISTS
                | op::REMOVE_RECURSIVE
        ),
        _ => matches!(
            sub,
            op::GET_DATA | op::GET_CHILDREN | op::GET_CHILDREN2 | op::EXISTS | op::FILTERED_LIST
        ),
    }
}

impl Request {
    /// The opcode.
    pub fn op(&self) -> i32 {
        match self {
            Request::Create(_) => op::CREATE,
            Request::Create2(_) => op::CREATE2,
            Request::CreateContainer(_) => op::CREATE_CONTAINER,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete { .. } => op::DELETE,
            Request::DeleteContainer { .. } => op::DELETE_CONTAINER,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::GetChildren { .. } => op::GET_CHILDREN,
            Request::GetChildren2 { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig { .. } => op::RECONFIG,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::Auth { .. } => op::AUTH,
            Request::SetWatches { .. } => op::SET_WATCHES,
            Request::SetWatches2 { .. } => op::SET_WATCHES2,
            Request::Sasl { .. } => op::SASL,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::FilteredList { .. } => op::FILTERED_LIST,
            Request::CheckNotExists { .. } => op::CHECK_NOT_EXISTS,
            Request::CreateIfNotExists(_) => op::CREATE_IF_NOT_EXISTS,
            Request::RemoveRecursive { .. } => op::REMOVE_RECURSIVE,
        }
    }

    /// Whether the request changes state (goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete { .. }
                | Request::DeleteContainer { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::Reconfig { .. }
                | Request::CloseSession
                | Request::CheckNotExists { .. }
                | Request::CreateIfNotExists(_)
                | Request::RemoveRecursive { .. }
        )
    }

    /// The path the request names, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Request::Create(c)
            | Request::Create2(c)
            | Request::CreateContainer(c)
            | Request::CreateTtl(c)
            | Request::CreateIfNotExists(c) => Some(&c.path),
            Request::Delete { path, .. }
            | Request::DeleteContainer { path }
            | Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::SetData { path, .. }
            | Request::GetAcl { path }
            | Request::SetAcl { path, .. }
            | Request::GetChildren { path, .. }
            | Request::GetChildren2 { path, .. }
            | Request::Sync { path }
            | Request::Check { path, .. }
            | Request::CheckWatches { path, .. }
            | Request::RemoveWatches { path, .. }
            | Request::GetAllChildrenNumber { path }
            | Request::AddWatch { path, .. }
            | Request::FilteredList { path, .. }
            | Request::CheckNotExists { path, .. }
            | Request::RemoveRecursive { path, .. } => Some(path),
            Request::GetEphemerals { prefix } => Some(prefix),
            _ => None,
        }
    }

    /// Decodes the body of a request with opcode `op`. Trailing bytes are ignored, as
    /// ZooKeeper's record readers ignore them.
    pub fn decode_body(opcode: i32, r: &mut Reader<'_>) -> Result<Request> {
        Self::decode_at(opcode, r, None)
    }

    fn decode_at(opcode: i32, r: &mut Reader<'_>, outer: Option<i32>) -> Result<Request> {
        Ok(match opcode {
            op::CREATE => Request::Create(create(r, false)?),
            op::CREATE2 => Request::Create2(create(r, false)?),
            op::CREATE_CONTAINER => Request::CreateContainer(create(r, false)?),
            op::CREATE_TTL => Request::CreateTtl(create(r, true)?),
            op::CREATE_IF_NOT_EXISTS => Request::CreateIfNotExists(create(r, false)?),
            op::DELETE => Request::Delete { path: path(r, "path")?, version: i32_(r, "version")? },
            op::DELETE_CONTAINER => Request::DeleteContainer { path: path(r, "path")? },
            op::EXISTS => Request::Exists { path: path(r, "path")?, watch: bool_(r, "watch")? },
            op::GET_DATA => Request::GetData { path: path(r, "path")?, watch: bool_(r, "watch")? },
            op::SET_DATA => Request::SetData {
                path: path(r, "path")?,
                data: data(r)?,
                version: i32_(r, "version")?,
            },
            op::GET_ACL => Request::GetAcl { path: path(r, "path")? },
            op::SET_ACL => Request::SetAcl {
                path: path(r, "path")?,
                acl: acl(r)?,
                version: i32_(r, "version")?,
            },
            op::GET_CHILDREN => {
                Request::GetChildren { path: path(r, "path")?, watch: bool_(r, "watch")? }
            }
            op::GET_CHILDREN2 => {
                Request::GetChildren2 { path: path(r, "path")?, watch: bool_(r, "watch")? }
            }
            op::SYNC => Request::Sync { path: path(r, "path")? },
            op::PING => Request::Ping,
            op::CHECK => Request::Check { path: path(r, "path")?, version: i32_(r, "version")? },
            op::CHECK_NOT_EXISTS => {
                Request::CheckNotExists { path: path(r, "path")?, version: i32_(r, "version")? }
            }
            op::MULTI | op::MULTI_READ => {
                if let Some(o) = outer {
                    return Err(ProtoError::NotInMulti { op: opcode, outer: o });
                }
                let subs = Self::decode_multi(opcode, r)?;
                if opcode == op::MULTI {
                    Request::Multi(subs)
                } else {
                    Request::MultiRead(subs)
                }
            }
            op::RECONFIG => Request::Reconfig {
                joining: opt_string(r, "joining")?,
                leaving: opt_string(r, "leaving")?,
                new_members: opt_string(r, "newMembers")?,
                cur_config_id: i64_(r, "curConfigId")?,
            },
            op::CHECK_WATCHES => {
                Request::CheckWatches { path: path(r, "path")?, watcher_type: i32_(r, "type")? }
            }
            op::REMOVE_WATCHES => {
                Request::RemoveWatches { path: path(r, "path")?, watcher_type: i32_(r, "type")? }
            }
            op::AUTH => Request::Auth {
                auth_type: i32_(r, "auth type")?,
                scheme: opt_string(r, "scheme")?.unwrap_or_default(),
                auth: r.buffer().map_err(ProtoError::decode("auth"))?.unwrap_or_default().to_vec(),
            },
            op::SET_WATCHES => Request::SetWatches {
                relative_zxid: i64_(r, "relativeZxid")?,
                data: strings(r, "dataWatches")?,
                exist: strings(r, "existWatches")?,
                child: strings(r, "childWatches")?,
            },
            op::SET_WATCHES2 => Request::SetWatches2 {
                relative_zxid: i64_(r, "relativeZxid")?,
                data: strings(r, "dataWatches")?,
                exist: strings(r, "existWatches")?,
                child: strings(r, "childWatches")?,
                persistent: strings(r, "persistentWatches")?,
                persistent_recursive: strings(r, "persistentRecursiveWatches")?,
            },
            op::SASL => Request::Sasl {
                token: r.buffer().map_err(ProtoError::decode("sasl"))?.unwrap_or_default().to_vec(),
            },
            op::GET_EPHEMERALS => {
                Request::GetEphemerals { prefix: opt_string(r, "prefixPath")?.unwrap_or_default() }
            }
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: path(r, "path")? },
            op::ADD_WATCH => Request::AddWatch { path: path(r, "path")?, mode: i32_(r, "mode")? },
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            op::FILTERED_LIST => Request::FilteredList {
                path: path(r, "path")?,
                watch: bool_(r, "watch")?,
                list_type: r.u8().map_err(ProtoError::decode("list type"))?,
            },
            op::REMOVE_RECURSIVE => Request::RemoveRecursive {
                path: path(r, "path")?,
                limit: u32::from_be_bytes(i32_(r, "limit")?.to_be_bytes()),
            },
            other => return Err(ProtoError::UnknownOp(other)),
        })
    }

    fn decode_multi(outer: i32, r: &mut Reader<'_>) -> Result<Vec<Request>> {
        let mut subs = Vec::new();
        loop {
            let sub = i32_(r, "multi header")?;
            let done = bool_(r, "multi header")?;
            let _err = i32_(r, "multi header")?;
            if done {
                return Ok(subs);
            }
            if !in_multi(outer, sub) {
                return Err(ProtoError::NotInMulti { op: sub, outer });
            }
            // Every sub-op takes at least 9 bytes, so the loop ends with the input.
            subs.push(Self::decode_at(sub, r, Some(outer))?);
        }
    }

    /// Encodes the body (without the header).
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Request::Create(c)
            | Request::Create2(c)
            | Request::CreateContainer(c)
            | Request::CreateTtl(c)
            | Request::CreateIfNotExists(c) => write_create(w, c),
            Request::Delete { path, version }
            | Request::Check { path, version }
            | Request::CheckNotExists { path, version } => {
                w.ustring(Some(path));
                w.i32(*version);
            }
            Request::DeleteContainer { path }
            | Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path } => w.ustring(Some(path)),
            Request::GetEphemerals { prefix } => w.ustring(Some(prefix)),
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                w.ustring(Some(path));
                w.bool(*watch);
            }
            Request::SetData { path, data, version } => {
                w.ustring(Some(path));
                w.buffer(data.as_deref());
                w.i32(*version);
            }
            Request::SetAcl { path, acl, version } => {
                w.ustring(Some(path));
                write_acl(w, acl);
                w.i32(*version);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(subs) | Request::MultiRead(subs) => {
                for s in subs {
                    w.i32(s.op());
                    w.bool(false);
                    w.i32(-1);
                    s.encode_body(w);
                }
                w.i32(-1);
                w.bool(true);
                w.i32(-1);
            }
            Request::Reconfig { joining, leaving, new_members, cur_config_id } => {
                w.ustring(joining.as_deref());
                w.ustring(leaving.as_deref());
                w.ustring(new_members.as_deref());
                w.i64(*cur_config_id);
            }
            Request::CheckWatches { path, watcher_type }
            | Request::RemoveWatches { path, watcher_type } => {
                w.ustring(Some(path));
                w.i32(*watcher_type);
            }
            Request::Auth { auth_type, scheme, auth } => {
                w.i32(*auth_type);
                w.ustring(Some(scheme));
                w.buffer(Some(auth));
            }
            Request::SetWatches { relative_zxid, data, exist, child } => {
                w.i64(*relative_zxid);
                write_strings(w, data);
                write_strings(w, exist);
                write_strings(w, child);
            }
            Request::SetWatches2 {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
            } => {
                w.i64(*relative_zxid);
                write_strings(w, data);
                write_strings(w, exist);
                write_strings(w, child);
                write_strings(w, persistent);
                write_strings(w, persistent_recursive);
            }
            Request::Sasl { token } => w.buffer(Some(token)),
            Request::AddWatch { path, mode } => {
                w.ustring(Some(path));
                w.i32(*mode);
            }
            Request::FilteredList { path, watch, list_type } => {
                w.ustring(Some(path));
                w.bool(*watch);
                w.u8(*list_type);
            }
            Request::RemoveRecursive { path, limit } => {
                w.ustring(Some(path));
                w.raw(&limit.to_be_bytes());
            }
        }
    }
}
