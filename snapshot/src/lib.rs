//! Snapshot formats for keeperkit.
//!
//! - [`zookeeper`]: Apache ZooKeeper 3.x snapshots (`snapshot.<hex zxid>[.gz|.snappy]`),
//!   read exactly as ZooKeeper's `FileSnap` reads them, with both Adler-32 seals checked.
//!
//! Readers hand what they decode to a sink (for ZooKeeper: [`zookeeper::SnapshotSink`]),
//! so this crate never depends on a tree: the storage layer decides what a node means.
//!
//! Architecture invariants:
//! - every byte goes through [`keeperkit_vfs::FileSystem`];
//! - no decoder panics on any input, and every length and count read from a file is
//!   checked against its limit and the bytes that remain before anything is allocated;
//! - corruption is reported as [`SnapshotError::Corrupt`] with the file and byte offset.

pub mod clickhouse;
mod error;
pub mod native;
pub mod zookeeper;
pub mod zookeeper_writer;

pub use error::SnapshotError;
