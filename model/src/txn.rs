//! ZooKeeper transactions as they appear in txn logs: the `TxnHeader`, one body per
//! type (`SerializeUtils.deserializeTxn`), multi with its sub-transactions, and the
//! optional `TxnDigest` that follows (3.6+).
//!
//! [`Txn::decode_from`] and [`Txn::encode_into`] are exact inverses for every record a
//! ZooKeeper 3.4–3.9 server writes (checked by round-trip tests on real logs).

use std::fmt;

use crate::acl::{Acl, AclList};
use crate::errcode::ErrorCode;
use crate::error::{CorruptionKind, DecodeError};
use crate::ids::{SessionId, Zxid};
use crate::jute::{Reader, Writer};
use crate::limits;

/// A txn type code (`ZooDefs.OpCode`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpCode(pub i32);

impl OpCode {
    /// `create`.
    pub const CREATE: OpCode = OpCode(1);
    /// `delete`.
    pub const DELETE: OpCode = OpCode(2);
    /// `setData`.
    pub const SET_DATA: OpCode = OpCode(5);
    /// `setACL`.
    pub const SET_ACL: OpCode = OpCode(7);
    /// `check` (inside multi).
    pub const CHECK: OpCode = OpCode(13);
    /// `multi`.
    pub const MULTI: OpCode = OpCode(14);
    /// `create2`.
    pub const CREATE2: OpCode = OpCode(15);
    /// `reconfig`.
    pub const RECONFIG: OpCode = OpCode(16);
    /// `createContainer`.
    pub const CREATE_CONTAINER: OpCode = OpCode(19);
    /// `deleteContainer`.
    pub const DELETE_CONTAINER: OpCode = OpCode(20);
    /// `createTTL`.
    pub const CREATE_TTL: OpCode = OpCode(21);
    /// `createSession`.
    pub const CREATE_SESSION: OpCode = OpCode(-10);
    /// `closeSession`.
    pub const CLOSE_SESSION: OpCode = OpCode(-11);
    /// `error`.
    pub const ERROR: OpCode = OpCode(-1);

    /// ZooKeeper's name for the type.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "create",
            2 => "delete",
            5 => "setData",
            7 => "setACL",
            13 => "check",
            14 => "multi",
            15 => "create2",
            16 => "reconfig",
            19 => "createContainer",
            20 => "deleteContainer",
            21 => "createTTL",
            -10 => "createSession",
            -11 => "closeSession",
            -1 => "error",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The header every logged txn starts with (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxnHeader {
    /// Session that issued the request (0 for server-issued txns).
    pub client_id: SessionId,
    /// The client's request counter.
    pub cxid: i32,
    /// The txn's zxid.
    pub zxid: Zxid,
    /// Leader wall-clock time when the txn was prepared, ms since the epoch.
    pub time: i64,
    /// The txn type.
    pub op: OpCode,
}

impl TxnHeader {
    /// Encoded size in bytes.
    pub const LEN: usize = 32;

    /// Decodes the header.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<TxnHeader, DecodeError> {
        Ok(TxnHeader {
            client_id: SessionId(r.i64()?),
            cxid: r.i32()?,
            zxid: Zxid(r.i64()?),
            time: r.i64()?,
            op: OpCode(r.i32()?),
        })
    }

    /// Encodes the header.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i64(self.client_id.0);
        w.i32(self.cxid);
        w.i64(self.zxid.0);
        w.i64(self.time);
        w.i32(self.op.0);
    }
}

/// The digest of the whole tree after a txn (`TxnDigest`, 12 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxnDigest {
    /// Digest algorithm version (2 in 3.6+).
    pub version: i32,
    /// The tree digest.
    pub tree_digest: i64,
}

impl TxnDigest {
    /// Encoded size in bytes.
    pub const LEN: usize = 12;
}

/// The body shared by every create flavour.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CreateTxn {
    /// Final path (sequence suffix included).
    pub path: String,
    /// Data; `None` for a null value.
    pub data: Option<Vec<u8>>,
    /// ACL of the new node (already fixed up by the leader).
    pub acl: AclList,
    /// Ephemeral flag (`create` / `create2` only).
    pub ephemeral: bool,
    /// Parent's new stored cversion; −1 when unknown (old logs).
    pub parent_cversion: i32,
    /// TTL in ms (`createTTL` only).
    pub ttl: Option<i64>,
    /// Whether this is an old `CreateTxnV0` without `parentCVersion` (kept so the
    /// record re-encodes byte for byte).
    pub v0: bool,
}

/// `setData` / `reconfig` body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SetDataTxn {
    /// Path of the node.
    pub path: String,
    /// New data; `None` for null.
    pub data: Option<Vec<u8>>,
    /// The node's new data version (absolute).
    pub version: i32,
}

/// A txn body, by type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxnBody {
    /// Type 1.
    Create(CreateTxn),
    /// Type 15.
    Create2(CreateTxn),
    /// Type 19.
    CreateContainer(CreateTxn),
    /// Type 21.
    CreateTtl(CreateTxn),
    /// Type 2.
    Delete {
        /// Path of the deleted node.
        path: String,
    },
    /// Type 20.
    DeleteContainer {
        /// Path of the deleted node.
        path: String,
    },
    /// Type 5.
    SetData(SetDataTxn),
    /// Type 16: a `SetDataTxn` on `/zookeeper/config`.
    Reconfig(SetDataTxn),
    /// Type 7.
    SetAcl {
        /// Path of the node.
        path: String,
        /// The new ACL list.
        acl: AclList,
        /// The new ACL version (absolute).
        version: i32,
    },
    /// Type 13 (inside multi; top-level in buggy 3.8.0–3.8.4 logs).
    Check {
        /// Path checked.
        path: String,
        /// Version expected.
        version: i32,
    },
    /// Type 14.
    Multi(Vec<TxnBody>),
    /// Type −10.
    CreateSession {
        /// Negotiated timeout in ms.
        timeout_ms: i32,
    },
    /// Type −11. `paths` is `None` for old logs without a body.
    CloseSession {
        /// Ephemeral paths to delete (3.6+).
        paths: Option<Vec<String>>,
    },
    /// Type −1.
    Error {
        /// The error the request failed with.
        err: ErrorCode,
    },
}

/// A complete logged transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Txn {
    /// The header.
    pub header: TxnHeader,
    /// The body.
    pub body: TxnBody,
    /// The tree digest after this txn (absent in error txns and pre-3.6 logs).
    pub digest: Option<TxnDigest>,
}

/// Type alias kept for readability at call sites handling multi members.
pub type SubTxn = TxnBody;
/// Type alias kept for readability at call sites handling multi members.
pub type SubTxnBody = TxnBody;

impl TxnBody {
    /// The type code of this body.
    pub fn op(&self) -> OpCode {
        match self {
            TxnBody::Create(_) => OpCode::CREATE,
            TxnBody::Create2(_) => OpCode::CREATE2,
            TxnBody::CreateContainer(_) => OpCode::CREATE_CONTAINER,
            TxnBody::CreateTtl(_) => OpCode::CREATE_TTL,
            TxnBody::Delete { .. } => OpCode::DELETE,
            TxnBody::DeleteContainer { .. } => OpCode::DELETE_CONTAINER,
            TxnBody::SetData(_) => OpCode::SET_DATA,
            TxnBody::Reconfig(_) => OpCode::RECONFIG,
            TxnBody::SetAcl { .. } => OpCode::SET_ACL,
            TxnBody::Check { .. } => OpCode::CHECK,
            TxnBody::Multi(_) => OpCode::MULTI,
            TxnBody::CreateSession { .. } => OpCode::CREATE_SESSION,
            TxnBody::CloseSession { .. } => OpCode::CLOSE_SESSION,
            TxnBody::Error { .. } => OpCode::ERROR,
        }
    }

    /// The path this body acts on, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            TxnBody::Create(c)
            | TxnBody::Create2(c)
            | TxnBody::CreateContainer(c)
            | TxnBody::CreateTtl(c) => Some(&c.path),
            TxnBody::Delete { path }
            | TxnBody::DeleteContainer { path }
            | TxnBody::SetAcl { path, .. }
            | TxnBody::Check { path, .. } => Some(path),
            TxnBody::SetData(s) | TxnBody::Reconfig(s) => Some(&s.path),
            _ => None,
        }
    }

    /// Decodes the body of a txn of type `op` (`depth` counts multi nesting).
    fn decode_from(op: OpCode, r: &mut Reader<'_>, depth: usize) -> Result<TxnBody, DecodeError> {
        Ok(match op {
            OpCode::CREATE | OpCode::CREATE2 => {
                let path = r.string("path")?;
                let data = r.buffer()?.map(<[u8]>::to_vec);
                let acl = Acl::decode_list(r)?;
                let ephemeral = r.bool()?;
                // CreateTxnV0 (no parentCVersion) ends here.
                let (parent_cversion, v0) =
                    if r.remaining() >= 4 { (r.i32()?, false) } else { (-1, true) };
                let c = CreateTxn { path, data, acl, ephemeral, parent_cversion, ttl: None, v0 };
                if op == OpCode::CREATE {
                    TxnBody::Create(c)
                } else {
                    TxnBody::Create2(c)
                }
            }
            OpCode::CREATE_CONTAINER | OpCode::CREATE_TTL => {
                let path = r.string("path")?;
                let data = r.buffer()?.map(<[u8]>::to_vec);
                let acl = Acl::decode_list(r)?;
                let parent_cversion = r.i32()?;
                let ttl = if op == OpCode::CREATE_TTL { Some(r.i64()?) } else { None };
                let c = CreateTxn {
                    path,
                    data,
                    acl,
                    ephemeral: false,
                    parent_cversion,
                    ttl,
                    v0: false,
                };
                if op == OpCode::CREATE_TTL {
                    TxnBody::CreateTtl(c)
                } else {
                    TxnBody::CreateContainer(c)
                }
            }
            OpCode::DELETE => TxnBody::Delete { path: r.string("path")? },
            OpCode::DELETE_CONTAINER => TxnBody::DeleteContainer { path: r.string("path")? },
            OpCode::SET_DATA | OpCode::RECONFIG => {
                let s = SetDataTxn {
                    path: r.string("path")?,
                    data: r.buffer()?.map(<[u8]>::to_vec),
                    version: r.i32()?,
                };
                if op == OpCode::SET_DATA {
                    TxnBody::SetData(s)
                } else {
                    TxnBody::Reconfig(s)
                }
            }
            OpCode::SET_ACL => TxnBody::SetAcl {
                path: r.string("path")?,
                acl: Acl::decode_list(r)?,
                version: r.i32()?,
            },
            OpCode::CHECK => TxnBody::Check { path: r.string("path")?, version: r.i32()? },
            OpCode::CREATE_SESSION => TxnBody::CreateSession { timeout_ms: r.i32()? },
            OpCode::CLOSE_SESSION => {
                if r.is_empty() {
                    TxnBody::CloseSession { paths: None }
                } else {
                    let n = r.vector_len(4)?.unwrap_or(0);
                    let mut paths = Vec::with_capacity(n);
                    for _ in 0..n {
                        paths.push(r.string("path")?);
                    }
                    TxnBody::CloseSession { paths: Some(paths) }
                }
            }
            OpCode::ERROR => TxnBody::Error { err: ErrorCode::from_i32(r.i32()?) },
            OpCode::MULTI => {
                if depth >= limits::MULTI_DEPTH_MAX {
                    return Err(r.err(CorruptionKind::bad_request("multi nested inside multi")));
                }
                // Each sub-txn takes at least 8 bytes: type + buffer length.
                let n = r.vector_len(8)?.unwrap_or(0);
                if n > limits::MULTI_OPS_MAX {
                    return Err(DecodeError::new(
                        r.position() as u64,
                        CorruptionKind::LengthOutOfRange {
                            len: n as i64,
                            max: limits::MULTI_OPS_MAX as u64,
                        },
                    ));
                }
                let mut subs = Vec::with_capacity(n);
                for _ in 0..n {
                    let sub_op = OpCode(r.i32()?);
                    let at = r.position();
                    let bytes = r.buffer()?.unwrap_or_default();
                    let mut sub = Reader::new(bytes);
                    let body = TxnBody::decode_from(sub_op, &mut sub, depth + 1)
                        .map_err(|e| e.shifted(at as u64 + 4))?;
                    subs.push(body);
                }
                TxnBody::Multi(subs)
            }
            other => {
                return Err(DecodeError::new(
                    r.position() as u64,
                    CorruptionKind::UnknownTxnType(other.0),
                ))
            }
        })
    }

    /// Encodes the body (without header).
    pub fn encode_into(&self, w: &mut Writer) {
        match self {
            TxnBody::Create(c) | TxnBody::Create2(c) => {
                w.ustring(Some(&c.path));
                w.buffer(c.data.as_deref());
                Acl::encode_list(&c.acl, w);
                w.bool(c.ephemeral);
                if !c.v0 {
                    w.i32(c.parent_cversion);
                }
            }
            TxnBody::CreateContainer(c) | TxnBody::CreateTtl(c) => {
                w.ustring(Some(&c.path));
                w.buffer(c.data.as_deref());
                Acl::encode_list(&c.acl, w);
                w.i32(c.parent_cversion);
                if let TxnBody::CreateTtl(_) = self {
                    w.i64(c.ttl.unwrap_or(0));
                }
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                w.ustring(Some(path));
            }
            TxnBody::SetData(s) | TxnBody::Reconfig(s) => {
                w.ustring(Some(&s.path));
                w.buffer(s.data.as_deref());
                w.i32(s.version);
            }
            TxnBody::SetAcl { path, acl, version } => {
                w.ustring(Some(path));
                Acl::encode_list(acl, w);
                w.i32(*version);
            }
            TxnBody::Check { path, version } => {
                w.ustring(Some(path));
                w.i32(*version);
            }
            TxnBody::Multi(subs) => {
                w.vector_len(Some(subs.len()));
                for s in subs {
                    w.i32(s.op().0);
                    let mut inner = Writer::new();
                    s.encode_into(&mut inner);
                    w.buffer(Some(inner.as_slice()));
                }
            }
            TxnBody::CreateSession { timeout_ms } => w.i32(*timeout_ms),
            TxnBody::CloseSession { paths } => {
                if let Some(paths) = paths {
                    w.vector_len(Some(paths.len()));
                    for p in paths {
                        w.ustring(Some(p));
                    }
                }
            }
            TxnBody::Error { err } => w.i32(err.as_i32()),
        }
    }

    /// Whether a multi failed (any member is an error txn): ZooKeeper applies none of
    /// its members then.
    pub fn is_failed_multi(&self) -> bool {
        matches!(self, TxnBody::Multi(subs) if subs.iter().any(|s| matches!(s, TxnBody::Error { .. })))
    }
}

impl Txn {
    /// Decodes a complete txn payload (what a log record's checksum covers): header,
    /// body, and the optional digest.
    pub fn decode_from(payload: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(payload);
        let header = TxnHeader::decode_from(&mut r)?;
        let body = TxnBody::decode_from(header.op, &mut r, 0)?;
        let digest = if r.remaining() >= TxnDigest::LEN {
            Some(TxnDigest { version: r.i32()?, tree_digest: r.i64()? })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(
                r.err(CorruptionKind::TrailingBytes { after: "txn", count: r.remaining() as u64 })
            );
        }
        Ok(Txn { header, body, digest })
    }

    /// Encodes the txn payload: header, body, optional digest.
    pub fn encode_into(&self, w: &mut Writer) {
        debug_assert_eq!(self.header.op, self.body.op(), "header type must match body");
        self.header.encode_into(w);
        self.body.encode_into(w);
        if let Some(d) = self.digest {
            w.i32(d.version);
            w.i64(d.tree_digest);
        }
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Id, Perms};

    fn header(op: OpCode) -> TxnHeader {
        TxnHeader { client_id: SessionId(7), cxid: 3, zxid: Zxid(0x10), time: 1234, op }
    }

    fn round_trip(body: TxnBody, digest: Option<TxnDigest>) {
        let txn = Txn { header: header(body.op()), body, digest };
        let bytes = txn.to_bytes();
        let back = Txn::decode_from(&bytes).unwrap();
        assert_eq!(back, txn);
        assert_eq!(back.to_bytes(), bytes);
    }

    fn create() -> CreateTxn {
        CreateTxn {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: vec![Acl {
                perms: Perms::READ,
                id: Id { scheme: "ip".into(), id: "10.0.0.0/8".into() },
            }],
            ephemeral: true,
            parent_cversion: 4,
            ttl: None,
            v0: false,
        }
    }

    #[test]
    fn every_body_round_trips() {
        let d = Some(TxnDigest { version: 2, tree_digest: -5 });
        round_trip(TxnBody::Create(create()), d);
        round_trip(TxnBody::Create2(CreateTxn { data: None, ..create() }), d);
        round_trip(TxnBody::Create(CreateTxn { v0: true, parent_cversion: -1, ..create() }), None);
        round_trip(TxnBody::CreateContainer(CreateTxn { ephemeral: false, ..create() }), d);
        round_trip(
            TxnBody::CreateTtl(CreateTxn { ephemeral: false, ttl: Some(300), ..create() }),
            d,
        );
        round_trip(TxnBody::Delete { path: "/a".into() }, d);
        round_trip(TxnBody::DeleteContainer { path: "/a".into() }, d);
        let s = SetDataTxn { path: "/a".into(), data: None, version: 3 };
        round_trip(TxnBody::SetData(s.clone()), d);
        round_trip(TxnBody::Reconfig(s), d);
        round_trip(TxnBody::SetAcl { path: "/a".into(), acl: Acl::open_unsafe(), version: 2 }, d);
        round_trip(TxnBody::CreateSession { timeout_ms: 30000 }, d);
        round_trip(TxnBody::CloseSession { paths: Some(vec!["/e".into()]) }, d);
        round_trip(TxnBody::CloseSession { paths: None }, None);
        round_trip(TxnBody::Error { err: ErrorCode::NodeExists }, None);
        round_trip(
            TxnBody::Multi(vec![
                TxnBody::Create(create()),
                TxnBody::Check { path: "/a".into(), version: 1 },
                TxnBody::Error { err: ErrorCode::BadVersion },
                TxnBody::Error { err: ErrorCode::RuntimeInconsistency },
            ]),
            d,
        );
    }

    #[test]
    fn failed_multi_is_detected() {
        let ok = TxnBody::Multi(vec![TxnBody::Check { path: "/a".into(), version: 1 }]);
        assert!(!ok.is_failed_multi());
        let bad = TxnBody::Multi(vec![TxnBody::Error { err: ErrorCode::NoNode }]);
        assert!(bad.is_failed_multi());
    }

    #[test]
    fn unknown_type_is_named() {
        let mut w = Writer::new();
        header(OpCode(99)).encode_into(&mut w);
        let err = Txn::decode_from(w.as_slice()).unwrap_err();
        assert_eq!(err.kind, CorruptionKind::UnknownTxnType(99));
        assert_eq!(err.offset, 32);
    }

    #[test]
    fn nested_multi_is_refused() {
        let inner = TxnBody::Multi(vec![]);
        let txn =
            Txn { header: header(OpCode::MULTI), body: TxnBody::Multi(vec![inner]), digest: None };
        assert!(Txn::decode_from(&txn.to_bytes()).is_err());
    }
}
