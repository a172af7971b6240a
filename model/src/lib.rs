//! The ZooKeeper data model shared by every keeperkit crate.
//!
//! This crate sits at the bottom of the workspace. It knows the *vocabulary* of a
//! coordination service (zxids, sessions, stats, ACLs, node kinds, transactions, error
//! codes) and how ZooKeeper encodes them with jute. It knows nothing about files,
//! directories, trees or logs: the format crates (`wal`, `snapshot`) and the `tree`
//! build on it.
//!
//! Architecture invariants:
//! - no I/O, no global state; every decoder works on a byte slice;
//! - every length read from bytes is checked against a limit (see [`limits`]) before
//!   anything is allocated for it;
//! - decoders never panic on hostile input: they return [`DecodeError`] carrying the
//!   byte offset and a [`CorruptionKind`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod errcode;
pub mod error;
pub mod ids;
pub mod jute;
pub mod keeper;
pub mod le;
pub mod limits;
pub mod native_header;
pub mod node;
pub mod path;
pub mod stat;
pub mod time;
pub mod txn;

pub use acl::{Acl, AclList, Id, Perms};
pub use errcode::ErrorCode;
pub use error::{Corruption, CorruptionKind, DecodeError};
pub use ids::{SessionId, Zxid};
pub use node::{EphemeralOwner, NodeKind};
pub use stat::{Stat, StatPersisted};
pub use txn::{CreateTxn, OpCode, SubTxn, SubTxnBody, Txn, TxnBody, TxnDigest, TxnHeader};
