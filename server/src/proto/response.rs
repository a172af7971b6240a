//! Response bodies, by the opcode of the request they answer.

use keeperkit_model::jute::{Reader, Writer};
use keeperkit_model::{Acl, AclList, Stat};

use super::request::{strings, write_strings};
use super::{op, ProtoError, Result};

/// One entry of a whoAmI answer (`ClientInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The auth scheme (`ip`, `digest`, ...).
    pub scheme: String,
    /// The user (the id of that scheme).
    pub user: String,
}

/// The result of one op of a multi or multiRead (`OpResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// create (1): the path created.
    Create {
        /// Path (sequence suffix included).
        path: String,
    },
    /// create2 / createTTL / createContainer (sent as type 15): path and stat.
    Create2 {
        /// Path.
        path: String,
        /// The new node's stat.
        stat: Stat,
    },
    /// ClickHouse Keeper createIfNotExists (502).
    CreateIfNotExists {
        /// Path.
        path: String,
    },
    /// delete (2).
    Delete,
    /// check (13).
    Check,
    /// ClickHouse Keeper checkNotExists (501).
    CheckNotExists,
    /// ClickHouse Keeper removeRecursive (503).
    RemoveRecursive,
    /// setData (5): the new stat.
    SetData(Stat),
    /// getData (4), in a multiRead.
    GetData {
        /// Data (`None`: null).
        data: Option<Vec<u8>>,
        /// Stat.
        stat: Stat,
    },
    /// getChildren (8), in a multiRead.
    GetChildren(Vec<String>),
    /// exists (3), in a ClickHouse Keeper multiRead.
    Exists(Stat),
    /// list with stat (12), in a ClickHouse Keeper multiRead.
    List {
        /// Children.
        children: Vec<String>,
        /// Stat of the parent.
        stat: Stat,
    },
    /// filteredList (500), in a ClickHouse Keeper multiRead.
    FilteredList {
        /// Children.
        children: Vec<String>,
        /// Stat of the parent.
        stat: Stat,
    },
    /// An op that failed (type −1) with this code; in a failed multi, ops before the
    /// failing one report `RuntimeInconsistency` (−2) and ops after it too.
    Error(i32),
}

impl OpResult {
    /// The type written in the result's multi header.
    pub fn op(&self) -> i32 {
        match self {
            OpResult::Create { .. } => op::CREATE,
            OpResult::Create2 { .. } => op::CREATE2,
            OpResult::CreateIfNotExists { .. } => op::CREATE_IF_NOT_EXISTS,
            OpResult::Delete => op::DELETE,
            OpResult::Check => op::CHECK,
            OpResult::CheckNotExists => op::CHECK_NOT_EXISTS,
            OpResult::RemoveRecursive => op::REMOVE_RECURSIVE,
            OpResult::SetData(_) => op::SET_DATA,
            OpResult::GetData { .. } => op::GET_DATA,
            OpResult::GetChildren(_) => op::GET_CHILDREN,
            OpResult::Exists(_) => op::EXISTS,
            OpResult::List { .. } => op::GET_CHILDREN2,
            OpResult::FilteredList { .. } => op::FILTERED_LIST,
            OpResult::Error(_) => op::ERROR,
        }
    }
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body (delete, check, ping, auth, setWatches, addWatch, removeWatches,
    /// checkWatches, closeSession, and ClickHouse Keeper's checkNotExists and
    /// removeRecursive).
    Empty,
    /// create / createIfNotExists: the path created.
    Create {
        /// Path.
        path: String,
    },
    /// create2 / createTTL / createContainer.
    Create2 {
        /// Path.
        path: String,
        /// Stat of the new node.
        stat: Stat,
    },
    /// exists / setData / setACL.
    Stat(Stat),
    /// getData / reconfig.
    GetData {
        /// Data (`None`: null).
        data: Option<Vec<u8>>,
        /// Stat.
        stat: Stat,
    },
    /// getACL.
    GetAcl {
        /// ACL list.
        acl: AclList,
        /// Stat.
        stat: Stat,
    },
    /// getChildren.
    Children(Vec<String>),
    /// getChildren2 / filteredList.
    Children2 {
        /// Children.
        children: Vec<String>,
        /// Stat of the parent.
        stat: Stat,
    },
    /// sync: the path.
    Sync {
        /// Path.
        path: String,
    },
    /// multi / multiRead.
    Multi(Vec<OpResult>),
    /// getEphemerals.
    Ephemerals(Vec<String>),
    /// getAllChildrenNumber.
    AllChildrenNumber(i32),
    /// whoAmI.
    WhoAmI(Vec<ClientInfo>),
    /// sasl.
    Sasl {
        /// The token.
        token: Vec<u8>,
    },
    /// An `ErrorResponse` body: ZooKeeper answers addWatch with `ErrorResponse(0)`.
    /// Decoders of the empty-bodied answers ignore it.
    Code(i32),
}

fn stat(r: &mut Reader<'_>) -> Result<Stat> {
    Stat::decode_from(r).map_err(ProtoError::decode("stat"))
}

fn string(r: &mut Reader<'_>, what: &'static str) -> Result<String> {
    Ok(r.ustring().map_err(ProtoError::decode(what))?.unwrap_or_default())
}

fn data(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>> {
    Ok(r.buffer().map_err(ProtoError::decode("data"))?.map(<[u8]>::to_vec))
}

impl Response {
    /// Whether requests with opcode `op` are answered without a body.
    pub fn is_empty_for(opcode: i32) -> bool {
        matches!(
            opcode,
            op::DELETE
                | op::DELETE_CONTAINER
                | op::CHECK
                | op::CHECK_NOT_EXISTS
                | op::REMOVE_RECURSIVE
                | op::CLOSE_SESSION
                | op::PING
                | op::AUTH
                | op::SET_WATCHES
                | op::SET_WATCHES2
                | op::ADD_WATCH
                | op::REMOVE_WATCHES
                | op::CHECK_WATCHES
        )
    }

    /// Decodes the body answering a request with opcode `op`.
    pub fn decode(opcode: i32, r: &mut Reader<'_>) -> Result<Response> {
        if Self::is_empty_for(opcode) {
            return Ok(Response::Empty);
        }
        Ok(match opcode {
            op::CREATE | op::CREATE_IF_NOT_EXISTS => Response::Create { path: string(r, "path")? },
            op::CREATE2 | op::CREATE_TTL | op::CREATE_CONTAINER => {
                Response::Create2 { path: string(r, "path")?, stat: stat(r)? }
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(stat(r)?),
            op::GET_DATA | op::RECONFIG => Response::GetData { data: data(r)?, stat: stat(r)? },
            op::GET_ACL => {
                let n = r.vector_len(12).map_err(ProtoError::decode("acl"))?.unwrap_or(0);
                let mut acl = Vec::with_capacity(n);
                for _ in 0..n {
                    acl.push(Acl::decode_from(r).map_err(ProtoError::decode("acl"))?);
                }
                Response::GetAcl { acl, stat: stat(r)? }
            }
            op::GET_CHILDREN => Response::Children(strings(r, "children")?),
            op::GET_CHILDREN2 | op::FILTERED_LIST => {
                Response::Children2 { children: strings(r, "children")?, stat: stat(r)? }
            }
            op::SYNC => Response::Sync { path: string(r, "path")? },
            op::MULTI | op::MULTI_READ => Response::Multi(Self::decode_multi(r)?),
            op::GET_EPHEMERALS => Response::Ephemerals(strings(r, "ephemerals")?),
            op::GET_ALL_CHILDREN_NUMBER => {
                Response::AllChildrenNumber(r.i32().map_err(ProtoError::decode("totalNumber"))?)
            }
            op::WHO_AM_I => {
                let n = r.vector_len(8).map_err(ProtoError::decode("clientInfo"))?.unwrap_or(0);
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(ClientInfo {
                        scheme: string(r, "authScheme")?,
                        user: string(r, "user")?,
                    });
                }
                Response::WhoAmI(out)
            }
            op::SASL => Response::Sasl {
                token: r
                    .buffer()
                    .map_err(ProtoError::decode("token"))?
                    .unwrap_or_default()
                    .to_vec(),
            },
            other => return Err(ProtoError::UnknownOp(other)),
        })
    }

    fn decode_multi(r: &mut Reader<'_>) -> Result<Vec<OpResult>> {
        let mut out = Vec::new();
        loop {
            let e = ProtoError::decode("multi header");
            let (t, done, err) = match (r.i32(), r.bool(), r.i32()) {
                (Ok(t), Ok(d), Ok(e)) => (t, d, e),
                (Err(x), _, _) | (_, Err(x), _) | (_, _, Err(x)) => return Err(e(x)),
            };
            if done {
                return Ok(out);
            }
            out.push(match t {
                op::CREATE => OpResult::Create { path: string(r, "path")? },
                op::CREATE_IF_NOT_EXISTS => {
                    OpResult::CreateIfNotExists { path: string(r, "path")? }
                }
                op::CREATE2 | op::CREATE_TTL | op::CREATE_CONTAINER => {
                    OpResult::Create2 { path: string(r, "path")?, stat: stat(r)? }
                }
                op::DELETE | op::DELETE_CONTAINER => OpResult::Delete,
                op::CHECK => OpResult::Check,
                op::CHECK_NOT_EXISTS => OpResult::CheckNotExists,
                op::REMOVE_RECURSIVE => OpResult::RemoveRecursive,
                op::SET_DATA => OpResult::SetData(stat(r)?),
                op::GET_DATA => OpResult::GetData { data: data(r)?, stat: stat(r)? },
                op::GET_CHILDREN => OpResult::GetChildren(strings(r, "children")?),
                op::EXISTS => OpResult::Exists(stat(r)?),
                op::GET_CHILDREN2 => {
                    OpResult::List { children: strings(r, "children")?, stat: stat(r)? }
                }
                op::FILTERED_LIST => {
                    OpResult::FilteredList { children: strings(r, "children")?, stat: stat(r)? }
                }
                op::ERROR => {
                    // ErrorResponse repeats the code carried by the header.
                    let code = r.i32().map_err(ProtoError::decode("error result"))?;
                    let _ = err;
                    OpResult::Error(code)
                }
                other => return Err(ProtoError::UnknownOp(other)),
            });
        }
    }

    /// Encodes the body.
    pub fn encode_into(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => w.ustring(Some(path)),
            Response::Create2 { path, stat } => {
                w.ustring(Some(path));
                stat.encode_into(w);
            }
            Response::Stat(s) => s.encode_into(w),
            Response::GetData { data, stat } => {
                w.buffer(data.as_deref());
                stat.encode_into(w);
            }
            Response::GetAcl { acl, stat } => {
                w.vector_len(Some(acl.len()));
                for a in acl {
                    a.encode_into(w);
                }
                stat.encode_into(w);
            }
            Response::Children(c) | Response::Ephemerals(c) => write_strings(w, c),
            Response::Children2 { children, stat } => {
                write_strings(w, children);
                stat.encode_into(w);
            }
            Response::Multi(results) => {
                for res in results {
                    let err = if let OpResult::Error(e) = res { *e } else { 0 };
                    w.i32(res.op());
                    w.bool(false);
                    w.i32(err);
                    match res {
                        OpResult::Create { path } | OpResult::CreateIfNotExists { path } => {
                            w.ustring(Some(path));
                        }
                        OpResult::Create2 { path, stat } => {
                            w.ustring(Some(path));
                            stat.encode_into(w);
                        }
                        OpResult::Delete
                        | OpResult::Check
                        | OpResult::CheckNotExists
                        | OpResult::RemoveRecursive => {}
                        OpResult::SetData(s) | OpResult::Exists(s) => s.encode_into(w),
                        OpResult::GetData { data, stat } => {
                            w.buffer(data.as_deref());
                            stat.encode_into(w);
                        }
                        OpResult::GetChildren(c) => write_strings(w, c),
                        OpResult::List { children, stat }
                        | OpResult::FilteredList { children, stat } => {
                            write_strings(w, children);
                            stat.encode_into(w);
                        }
                        OpResult::Error(e) => w.i32(*e),
                    }
                }
                w.i32(-1);
                w.bool(true);
                w.i32(-1);
            }
            Response::AllChildrenNumber(n) => w.i32(*n),
            Response::WhoAmI(infos) => {
                w.vector_len(Some(infos.len()));
                for i in infos {
                    w.ustring(Some(&i.scheme));
                    w.ustring(Some(&i.user));
                }
            }
            Response::Sasl { token } => w.buffer(Some(token)),
            Response::Code(c) => w.i32(*c),
        }
    }
}
