//! keeperkit storage: opening and recovering data directories.
//!
//! This crate composes the format crates (`wal`, `snapshot`) and the `tree`. It is the
//! only library crate that depends on more than one of them.
//!
//! Today it recovers ZooKeeper data directories exactly the way ZooKeeper 3.8 does
//! ([`zookeeper`]): the newest valid snapshot (falling back to older ones when it is
//! damaged), then the txn logs replayed from the snapshot's zxid (snapshots are fuzzy),
//! optionally stopping at a requested zxid. Everything recovery did, skipped or
//! doubted is returned in a report; nothing is printed here (only `tools` prints).
//!
//! Architecture invariants:
//! - recovery never writes: it only reads through the [`keeperkit_vfs::FileSystem`];
//! - replay never crosses a gap in the zxid sequence silently: it stops before the gap
//!   and reports it;
//! - a checksum mismatch is never skipped: it is an error naming file, offset and zxid.

pub mod clickhouse;
pub mod convert;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod native_snapshot;
pub mod traits;
pub mod zkscan;
pub mod zookeeper;

pub use dialect::{detect, Dialect};
pub use error::StorageError;
